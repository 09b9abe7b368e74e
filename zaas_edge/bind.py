"""Listen addresses: what a listener may bind, and what to say when it is reachable beyond the box.

Pure, for every listener the gateway opens (today the LoRa GWMP server).
The rule it keeps is "every interface only when written explicitly": the
system's resolver reads many spellings as the unspecified address (``::0``,
``0:0:0:0:0:0:0:0``, ``0.0``, ``0x0``, ``0``, ``::ffff:0.0.0.0``, an empty
string), so a string compare against ``"0.0.0.0"`` is no guard. The value is
parsed with ``ipaddress``; only an IP address in its plain form passes, and
the unspecified address only as the literal ``0.0.0.0`` or ``::``. Names are
refused too: what a name resolves to is decided later, by a resolver this
check cannot see.
"""

from __future__ import annotations

__all__ = ["EXPLICIT_WILDCARDS", "parse_bind", "exposure_warning"]

import ipaddress

EXPLICIT_WILDCARDS = frozenset({"0.0.0.0", "::"})


def parse_bind(value: str) -> str:
    """The address to bind, in its canonical form; ``ValueError`` with the reason and the fix otherwise."""
    text = value.strip()
    if text in EXPLICIT_WILDCARDS:
        return text
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        raise ValueError(
            f'bind = "{text}" is not an IP address written out (like "127.0.0.1", "::1" or "192.168.1.10"): '
            "a name or a short form (\"0\", \"0.0\", \"0x0\") is read by the system's resolver, which may make it "
            'every interface; write "0.0.0.0" or "::" to listen on every interface'
        ) from None
    if addr.is_unspecified:
        wildcard = "0.0.0.0" if addr.version == 4 else "::"
        raise ValueError(
            f'bind = "{text}" is the unspecified address (every interface) written another way: '
            f'write bind = "{wildcard}" to mean it, or keep the default "127.0.0.1"'
        )
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        mapped = addr.ipv4_mapped
        reason = "every interface, over IPv4" if mapped.is_unspecified else f"the IPv4 address {mapped}"
        fix = '"0.0.0.0"' if mapped.is_unspecified else f'"{mapped}"'
        raise ValueError(
            f'bind = "{text}" is an IPv4-mapped IPv6 address ({reason}): write bind = {fix} instead'
        )
    return str(addr)


def exposure_warning(what: str, host: str, port: int) -> str | None:
    """The warning to log when ``what`` is bound beyond loopback, naming the address it is bound to; else None."""
    try:
        addr = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        addr = None
    if addr is not None and addr.is_loopback:
        return None
    shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    where = "every interface" if addr is not None and addr.is_unspecified else "a network interface"
    return (f"{what} listens on {shown} ({where}): any host that reaches this port can talk to it; keep the "
            "peer on this box, restrict who may connect, or firewall the port")
