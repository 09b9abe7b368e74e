"""``zaas-edge mqtt test``: connect to the broker with the configured credentials and report.

It uses the configured address, TLS and account, with its own client id
(``<client_id>-test``) and a clean session, so the running daemon's session
is left alone. It reads the gateway's retained ``status`` to tell whether the
daemon itself is connected.
"""

from __future__ import annotations

__all__ = ["mqtt_group"]

import asyncio
import time
from typing import Any

import click

from zaas_edge.aio import wait_for
from zaas_edge.cli import cli
from zaas_edge.cli.output import emit, json_option

STATUS_WAIT_S = 1.0


@cli.group("mqtt")
def mqtt_group() -> None:
    """The building's MQTT broker: check the connection the daemon uses."""


async def _probe(cfg: Any) -> dict[str, Any]:
    import dataclasses

    from zaas_edge.mqtt.client import connect, settings_from_config
    from zaas_edge.mqtt.topics import Topics

    topics = Topics(cfg.gateway.site, cfg.gateway.id, cfg.mqtt.discovery_prefix)
    settings = settings_from_config(cfg)
    settings = dataclasses.replace(settings, client_id=f"{settings.client_id}-test"[:64], clean=True,
                                   timeout_s=5.0)
    t0 = time.monotonic()
    async with connect(settings) as conn:
        connect_ms = (time.monotonic() - t0) * 1000
        await conn.subscribe(topics.status)
        status = None

        async def first() -> None:
            nonlocal status
            async for m in conn.messages():
                if m.topic == topics.status:
                    status = m.payload.decode(errors="replace")
                    return

        try:
            await wait_for(first(), STATUS_WAIT_S)
        except TimeoutError:
            pass
    return {"broker": settings.describe, "username": settings.username, "connected": True,
            "connect_ms": round(connect_ms, 1), "base_topic": topics.base, "gateway_status": status}


@mqtt_group.command("test")
@json_option
@click.pass_context
def test_cmd(ctx: click.Context, as_json: bool) -> None:
    """Connect with the [mqtt] settings (address, TLS, user, password file) and report.

    Prints the broker, the time the connection took and the gateway's
    retained status (online, offline, or none when the daemon has never
    connected). A refused login or an unreachable broker exits non-zero with
    the reason.
    """
    from zaas_edge.config import load_config

    cfg = load_config((ctx.find_root().obj or {}).get("config_path")).config
    result = asyncio.run(_probe(cfg))

    def human(r: dict[str, Any]) -> None:
        who = f" as {r['username']}" if r["username"] else " (anonymous)"
        click.echo(f"broker: {r['broker']}{who}: connected in {r['connect_ms']} ms")
        click.echo(f"topics: {r['base_topic']}/...")
        click.echo(f"gateway status: {r['gateway_status'] or 'none retained (the daemon has not connected yet)'}")

    emit(result, as_json, human)
