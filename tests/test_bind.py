"""Listen addresses: no spelling of "every interface" gets past ``parse_bind`` but the two explicit ones."""

from __future__ import annotations

import ipaddress
import socket

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zaas_edge.bind import EXPLICIT_WILDCARDS, exposure_warning, parse_bind


def resolves_to_every_interface(text: str) -> bool:
    """What the system makes of ``text`` as a numeric host, the way a bind would read it."""
    try:
        infos = socket.getaddrinfo(text, None, flags=socket.AI_NUMERICHOST)
    except (socket.gaierror, UnicodeError, ValueError):
        return False
    for *_, sockaddr in infos:
        addr = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if addr.is_unspecified or (isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None
                                   and addr.ipv4_mapped.is_unspecified):
            return True
    return False


@given(st.text(alphabet="0123456789abcdefxABCDEFX:.%[] ", max_size=24))
def test_anything_accepted_is_every_interface_only_when_written_as_such(text: str) -> None:
    try:
        bound = parse_bind(text)
    except ValueError as exc:
        assert str(exc)  # a reason, always
        return
    assert resolves_to_every_interface(bound) == (bound in EXPLICIT_WILDCARDS)
    if bound not in EXPLICIT_WILDCARDS:
        assert not resolves_to_every_interface(text.strip())


@given(st.ip_addresses())
def test_every_plain_address_round_trips(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> None:
    mapped = isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None
    if addr.is_unspecified:
        assert parse_bind(str(addr)) == str(addr)  # "0.0.0.0" and "::" themselves
        if addr.exploded not in EXPLICIT_WILDCARDS:
            with pytest.raises(ValueError, match="every interface"):
                parse_bind(addr.exploded)
    elif mapped:
        with pytest.raises(ValueError, match="IPv4-mapped"):
            parse_bind(str(addr))
    else:
        assert parse_bind(str(addr)) == str(addr)
        assert parse_bind(addr.exploded) == str(addr)


@given(st.text(max_size=40))
def test_garbage_is_a_value_error_never_a_crash(text: str) -> None:
    try:
        parse_bind(text)
    except ValueError:
        pass


@pytest.mark.parametrize(("host", "warned"), [("127.0.0.1", False), ("127.1.2.3", False), ("::1", False),
                                              ("0.0.0.0", True), ("::", True), ("10.0.0.5", True),
                                              ("fe80::1%eth0", True)])
def test_only_loopback_is_quiet(host: str, warned: bool) -> None:
    text = exposure_warning("GWMP server", host, 1700)
    assert (text is not None) is warned
    if text is not None:
        assert ("[" + host + "]:1700" if ":" in host else host + ":1700") in text
