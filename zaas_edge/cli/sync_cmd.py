"""``sync status``, ``sync now``, ``identity init``, ``identity show`` and ``enroll``."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import Any

import click

from zaas_edge.cli import cli
from zaas_edge.cli.output import emit, format_bytes, format_duration, json_option, table
from zaas_edge.config import load_config

EXIT_NOT_RUNNING = 3
LANES = ("alarm", "event", "reading")


def _identity(cfg: Any):
    from zaas_edge.sync.identity import Identity

    return Identity(cfg.sync.identity_dir or cfg.gateway.state_dir / "identity", cfg.sync.ca_file)


# ------------------------------------------------------------------ identity

@cli.group("identity")
def identity_group() -> None:
    """The gateway's key pair and certificate for the central platform (mTLS)."""


@identity_group.command("init")
@click.option("--force", is_flag=True, help="Replace an existing key (the gateway must enroll again).")
@json_option
@click.pass_context
def identity_init(ctx: click.Context, force: bool, as_json: bool) -> None:
    """Make a new EC P-256 key (mode 0600) and a CSR naming this gateway."""
    cfg = load_config(ctx.obj.get("config_path")).config
    ident = _identity(cfg)
    ident.init(cfg.gateway.id, cfg.gateway.site, force=force)
    shown = ident.show()
    emit(shown, as_json, lambda s: click.echo(
        f"key: {ident.key_path} (0600)\ncsr: {ident.csr_path}\n"
        f"public key sha256: {s['key_pubkey_sha256']}\n"
        f"next: zaas-edge enroll --url URL --token TOKEN --ca PLATFORM-CA.pem"))


def _print_identity(s: dict[str, Any]) -> None:
    click.echo(f"identity: {s['dir']}")
    if not s["key"]:
        click.echo("key: none (run 'zaas-edge identity init')")
        return
    click.echo(f"public key sha256: {s['key_pubkey_sha256']}")
    cert = s.get("certificate")
    if not cert:
        click.echo("certificate: none (run 'zaas-edge enroll --url URL --token TOKEN')")
    else:
        click.echo(f"subject: {cert['subject']}")
        click.echo(f"issuer: {cert['issuer']}")
        click.echo(f"not after: {cert['not_after']}  (renewal from {s['renew_after']})")
        click.echo(f"certificate sha256: {cert['cert_sha256']}")
        click.echo(f"certified key sha256: {cert['pubkey_sha256']}")
    ca = s.get("ca")
    pinned = f"  {ca['subject']}  sha256 {ca['cert_sha256']}" if ca else " (missing)"
    click.echo(f"platform CA: {s['ca_file']}{pinned}")
    if s.get("renewal_pending"):
        click.echo("renewal: a new certificate is waiting to be tried")


@identity_group.command("show")
@json_option
@click.pass_context
def identity_show(ctx: click.Context, as_json: bool) -> None:
    """Subject, issuer, expiry and SHA-256 fingerprints (never the key itself)."""
    cfg = load_config(ctx.obj.get("config_path")).config
    emit(_identity(cfg).show(), as_json, _print_identity)


@cli.command("enroll")
@click.option("--url", default=None, help="The platform's API base URL [default: sync.url].")
@click.option("--token", required=True, envvar="ZAAS_ENROLL_TOKEN",
              help="One-time enrollment token from the platform [env ZAAS_ENROLL_TOKEN; prefer "
                   "the variable: a value on the command line shows in ps].")
@click.option("--ca", "ca", type=click.Path(dir_okay=False, exists=True), default=None,
              help="The platform CA to pin [default: sync.ca_file, else the identity's ca.pem].")
@json_option
@click.pass_context
def enroll_cmd(ctx: click.Context, url: str | None, token: str, ca: str | None, as_json: bool) -> None:
    """Exchange the CSR and a one-time token for this gateway's certificate."""
    import asyncio

    from zaas_edge.sync.enroll import enroll

    cfg = load_config(ctx.obj.get("config_path")).config
    url = url or cfg.sync.url
    if not url:
        raise click.ClickException("no platform URL: pass --url or set sync.url")
    if not url.startswith("https://"):
        raise click.ClickException(f"{url}: the platform is reached over https only")
    ident = _identity(cfg)
    ca_path = Path(ca) if ca else ident.ca_path
    if not ca_path.is_file():
        raise click.ClickException(f"no platform CA at {ca_path}: pass --ca FILE (from the platform's operators)")
    info = asyncio.run(enroll(ident, url, token, cfg.gateway.id, ca_path))
    emit(info.as_dict(), as_json, lambda d: click.echo(
        f"enrolled as {cfg.gateway.id}: certificate sha256 {d['cert_sha256']}, valid until {d['not_after']}"))


# ------------------------------------------------------------------ sync

@cli.group("sync")
def sync_group() -> None:
    """Delivery of the store to the central platform."""


def _offline_sync(cfg: Any) -> dict[str, Any]:
    """What the store and the batch directory tell while no daemon runs."""
    from zaas_edge.errors import ZaasError
    from zaas_edge.store import Store
    from zaas_edge.sync.batches import BatchStore

    out: dict[str, Any] = {"running": False, "lanes": {}}
    from zaas_edge.wire.codec import SOURCE_LANE

    source = {str(k): str(v) for k, v in SOURCE_LANE.items()}
    batch_dir = cfg.gateway.state_dir / "sync" / "batches"
    frozen = BatchStore(batch_dir) if batch_dir.is_dir() else None
    if not cfg.store_path.exists():
        out["error"] = f"no store at {cfg.store_path} (the daemon has not run here)"
        return out
    try:
        with Store(cfg.store_path, readonly=True) as store:
            cursors = store.cursors().get("sync", {})
            for lane in LANES:
                src = source.get(lane, lane)
                cursor = cursors.get(src, 0)
                try:
                    last = store.last_seq(src)
                except (KeyError, ValueError):
                    last = 0
                out["lanes"][lane] = {"backlog": max(0, last - cursor), "acked_through": cursor,
                                      "frozen": len(frozen.pending(lane)) if frozen else 0}
    except ZaasError as exc:
        out["error"] = str(exc)
    if frozen:
        out["quarantined"] = len(frozen.quarantined())
    return out


def _when(ts: float | None) -> str:
    if ts is None:
        return "never"
    return format_duration(dt.datetime.now().timestamp() - ts) + " ago"


def print_sync(st: dict[str, Any]) -> None:
    """The sync status as text: one row per lane (``sync status``, and ``status`` under its sync line)."""
    if not st.get("running", True):
        click.echo(f"daemon: not running ({st.get('reason', '')}); from the store:")
        if st.get("error"):
            click.echo(st["error"])
        rows = [(lane, v["backlog"], v["acked_through"], v["frozen"]) for lane, v in st.get("lanes", {}).items()]
        click.echo(table(["lane", "backlog", "acked through", "frozen batches"], rows))
        if st.get("quarantined"):
            click.echo(f"quarantined batches: {st['quarantined']}")
        return
    click.echo(f"sync: {st.get('state')}  {st.get('url') or ''}  encoding {st.get('encoding')}"
               + (f"  clock skew {st['clock_skew_s']:+.0f}s" if st.get("clock_skew_s") is not None else ""))
    rows = [(lane, v["backlog"], _when(v["last_success"]), format_bytes(v["bytes_sent"]),
             format_bytes(v["rate_bps"]) + "/s", v["quarantined"], (v["last_error"] or "")[:60])
            for lane, v in (st.get("lanes") or {}).items()]
    click.echo(table(["lane", "backlog", "last success", "sent", "rate", "quarantined", "last error"], rows))
    if st.get("alarms"):
        click.echo("alarms: " + ", ".join(st["alarms"]))


@sync_group.command("status")
@json_option
@click.pass_context
def sync_status(ctx: click.Context, as_json: bool) -> None:
    """Per lane: backlog, last success, last error, bytes sent and rate.

    From the running daemon, or from the store when none runs (exit 3).
    """
    from zaas_edge.control import ControlClient, DaemonNotRunning

    cfg = load_config(ctx.obj.get("config_path")).config
    try:
        st = ControlClient(cfg.control_socket).call("status")
        sync = st.get("sync")
        if sync is None:
            sync = {"running": True, "state": "not enabled (sync.enabled = false)", "lanes": {}}
        sync = {"running": True, **sync}
    except DaemonNotRunning as exc:
        sync = {**_offline_sync(cfg), "reason": str(exc)}
    emit(sync, as_json, print_sync)
    if not sync.get("running", True):
        sys.exit(EXIT_NOT_RUNNING)


@sync_group.command("now")
@click.pass_context
def sync_now(ctx: click.Context) -> None:
    """Wake the running daemon's sync: cut short its wait or backoff and send now."""
    from zaas_edge.control import ControlClient

    cfg = load_config(ctx.obj.get("config_path")).config
    try:
        ControlClient(cfg.control_socket).call("sync.now")
    except Exception as exc:  # noqa: BLE001  (re-raised as one line)
        if "unknown command" in str(exc):
            raise click.ClickException("the daemon runs without sync (set sync.enabled = true)") from None
        raise
    click.echo("sync woken")
