"""Run the daemon on a wall clock that is wrong until "NTP" arrives: a Pi without a real-time clock.

``python -m hil.run.clockshim STATE_FILE -c config.toml run`` runs the real
daemon (``zaas_edge.cli.main``) with ``time.time``/``time.time_ns`` shifted by
the state file's ``offset_s`` and the kernel's synchronised flag
(``zaas_edge.clock.kernel_clock_synced``, what ``timedatectl`` reads) taken
from its ``synced``. The runner writes ``{"offset_s": -2592000, "synced":
false}`` before the start and ``{"offset_s": 0, "synced": true}`` at the
``ntp_sync`` event: the wall clock jumps forward and is synchronised at the
same moment, as when timesyncd steps the clock; the monotonic clock never
moves. Setting the real clock needs root and would move every process on
the machine; this moves the daemon's alone, with no hook in the daemon.

The file is read again at most every 200 ms (a clock read per reading must
stay cheap); a missing or unreadable file means the true clock, synchronised.
"""

from __future__ import annotations

__all__ = ["ClockState", "main", "write_state"]

import json
import os
import sys
import time
from pathlib import Path

RECHECK_NS = 200_000_000


class ClockState:
    """The offset and flag of ``path``, cached for :data:`RECHECK_NS` of monotonic time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset_ns = 0
        self.synced = True
        self._checked = -RECHECK_NS
        self._mtime = -1

    def refresh(self) -> None:
        now = time.monotonic_ns()
        if now - self._checked < RECHECK_NS:
            return
        self._checked = now
        try:
            mtime = os.stat(self.path).st_mtime_ns
            if mtime == self._mtime:
                return
            doc = json.loads(self.path.read_text())
            self.offset_ns = int(float(doc.get("offset_s", 0)) * 1e9)
            self.synced = bool(doc.get("synced", True))
            self._mtime = mtime
        except (OSError, ValueError, TypeError, AttributeError):
            self.offset_ns, self.synced = 0, True


def write_state(path: Path, offset_s: float, synced: bool) -> None:
    """Replace the state file at once (the daemon never reads half of it)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"offset_s": offset_s, "synced": synced}))
    os.replace(tmp, path)


def install(state: ClockState) -> None:
    import zaas_edge.clock as clock

    real_time, real_time_ns = time.time, time.time_ns

    def shifted_ns() -> int:
        state.refresh()
        return real_time_ns() + state.offset_ns

    def shifted() -> float:
        state.refresh()
        return real_time() + state.offset_ns / 1e9

    def synced() -> bool:
        state.refresh()
        return state.synced

    time.time_ns, time.time = shifted_ns, shifted
    clock.kernel_clock_synced = synced


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if not args:
        sys.exit("usage: python -m hil.run.clockshim STATE_FILE ZAAS_EDGE_ARGS...")
    install(ClockState(Path(args[0])))
    from zaas_edge.cli import main as daemon_main

    sys.argv = ["zaas-edge", *args[1:]]
    daemon_main()


if __name__ == "__main__":
    main()
