"""``python -m hil.central --port P --dir D``: run the reference central API by hand.

``--test-mode`` adds the loopback-only ``/test/...`` endpoints (rows held,
stats, token minting, fault injection) that tests, benchmarks and demos
read; without it they do not exist, as on the platform.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from pathlib import Path

from hil.central.server import Central


async def _main(args: argparse.Namespace) -> int:
    central = Central(Path(args.dir), host=args.host, port=args.port, cert_days=args.cert_days,
                      test_mode=args.test_mode)
    await central.start()
    tokens = [central.new_token(args.gateway) for _ in range(args.tokens)]
    print(json.dumps({"url": central.url, "port": central.port, "ca": str(central.ca.ca_path),
                      "tokens": tokens}), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await central.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m hil.central", description=__doc__)
    p.add_argument("--port", type=int, default=0, help="TCP port (0: any free one; printed)")
    p.add_argument("--dir", required=True, help="Directory for the CA, keys and the SQLite file")
    p.add_argument("--host", default="127.0.0.1", help="Listen address (loopback by default)")
    p.add_argument("--gateway", default=None, help="Bind the printed enrollment tokens to this gateway id")
    p.add_argument("--tokens", type=int, default=1, help="How many one-time enrollment tokens to print")
    p.add_argument("--cert-days", type=float, default=90, help="Validity of issued gateway certificates")
    p.add_argument("--test-mode", action="store_true",
                   help="Serve the /test/... endpoints (loopback only): rows held, stats, new tokens, faults")
    return asyncio.run(_main(p.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
