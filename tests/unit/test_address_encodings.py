"""The outbound policy sees through every way of writing an address: IPv4 in any base or length, IPv6 that reaches
IPv4. One function judges them at creation (on the URL's face) and at connect time (resolved)."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.errors import URLNotAllowed
from app.services.outbound import check_on_face, resolve_checked_sync

NON_PUBLIC_V4 = [
    ipaddress.IPv4Network(n)
    for n in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "224.0.0.0/4",
        "240.0.0.0/4",
    )
]


@st.composite
def non_public_v4(draw: st.DrawFn) -> ipaddress.IPv4Address:
    net = draw(st.sampled_from(NON_PUBLIC_V4))
    return ipaddress.IPv4Address(int(net.network_address) + draw(st.integers(0, net.num_addresses - 1)))


public_v4 = st.integers(0, 2**32 - 1).map(ipaddress.IPv4Address).filter(lambda a: a.is_global and not a.is_multicast)


def _part(value: int, style: str) -> str:
    return {"dec": str(value), "oct": f"0{value:o}", "hex": f"0x{value:x}", "HEX": f"0X{value:X}"}[style]


@st.composite
def ipv4_spelling(draw: st.DrawFn, address: ipaddress.IPv4Address) -> str:
    """`address` as inet_aton / WHATWG parsers read it: 1 to 4 parts, each in any base, maybe a trailing dot."""
    value = int(address)
    count = draw(st.integers(1, 4))
    head = [(value >> (8 * (3 - i))) & 0xFF for i in range(count - 1)]
    last = value & ((1 << (8 * (5 - count))) - 1)
    styles = st.sampled_from(["dec", "oct", "hex", "HEX"])
    text = ".".join(_part(n, draw(styles)) for n in [*head, last])
    return text + draw(st.sampled_from(["", "."]))


@st.composite
def ipv6_reaching(draw: st.DrawFn, address: ipaddress.IPv4Address) -> str:
    """An IPv6 literal that embeds or reaches `address` (NAT64, 6to4, mapped, translated, compatible)."""
    v4 = int(address)
    forms = [
        ipaddress.IPv6Address((0x0064FF9B << 96) | v4),  # NAT64 well-known prefix
        ipaddress.IPv6Address((0x2002 << 112) | (v4 << 80) | draw(st.integers(0, 2**80 - 1))),  # 6to4
        ipaddress.IPv6Address((0xFFFF << 32) | v4),  # mapped
        ipaddress.IPv6Address((0xFFFF << 48) | v4),  # translated ::ffff:0:a.b.c.d
    ]
    if v4 > 1:
        forms.append(ipaddress.IPv6Address(v4))  # compatible ::a.b.c.d
    form = draw(st.sampled_from(forms))
    text = draw(st.sampled_from([form.compressed, form.exploded]))
    if draw(st.booleans()) and form != forms[1]:
        text = form.exploded.rsplit(":", 2)[0] + ":" + str(address)  # the dotted tail parsers also accept
    return f"[{text}]"


never_public_v6 = st.one_of(
    st.integers(0, 2**80 - 1).map(lambda n: ipaddress.IPv6Address((0x0064FF9B0001 << 80) | n)),  # local-use NAT64
    st.integers(0, 2**96 - 1).map(lambda n: ipaddress.IPv6Address((0x20010000 << 96) | n)),  # Teredo
    st.integers(0, 2**118 - 1).map(lambda n: ipaddress.IPv6Address((0xFEC0 << 112) | n)),  # site-local
)


def assert_refused_everywhere(host: str) -> None:
    url = f"http://{host}:8080/a.mp3"
    with pytest.raises(URLNotAllowed):
        check_on_face(url)
    with pytest.raises(URLNotAllowed):
        resolve_checked_sync(url)


@given(st.data())
def test_non_public_ipv4_in_any_spelling_is_refused(data: st.DataObject) -> None:
    assert_refused_everywhere(data.draw(ipv4_spelling(data.draw(non_public_v4()))))


@given(st.data())
def test_ipv6_reaching_non_public_ipv4_is_refused(data: st.DataObject) -> None:
    assert_refused_everywhere(data.draw(ipv6_reaching(data.draw(non_public_v4()))))


@given(never_public_v6)
def test_teredo_site_local_and_local_nat64_are_refused(address: ipaddress.IPv6Address) -> None:
    assert_refused_everywhere(f"[{address}]")


@given(public_v4)
def test_public_ipv4_in_plain_form_is_accepted(address: ipaddress.IPv4Address) -> None:
    url = f"http://{address}/a.mp3"
    check_on_face(url)
    assert resolve_checked_sync(url) == [address]


@pytest.mark.parametrize(
    "host", ["0177.0.0.1", "0x7f.0.0.1", "017700000001", "127.1", "127.0.1", "localhost.", "LOCALHOST", "127.0.0.1."]
)
def test_the_spellings_from_the_report_are_refused_at_creation(host: str) -> None:
    with pytest.raises(URLNotAllowed):
        check_on_face(f"http://{host}/a.mp3")


FULLWIDTH = str.maketrans("0123456789.abcdefxABCDEFX", "０１２３４５６７８９．ａｂｃｄｅｆｘＡＢＣＤＥＦＸ")


DECODED_SPELLINGS = ["１２７.０.０.２", "１２７．０．０．２", "127。0。0。1"]
DECODED_SPELLINGS += ["%31%32%37.0.0.2", "%31%32%37%2e0%2e0%2e2", "%EF%BC%9127.1"]


@pytest.mark.parametrize("host", DECODED_SPELLINGS)
def test_percent_encoded_and_fullwidth_hosts_are_refused_at_creation_and_connect(host: str) -> None:
    """Browsers (WHATWG URL) percent-decode the host and map fullwidth characters before reading the address."""
    assert_refused_everywhere(host)


@given(st.data())
def test_non_public_ipv4_percent_encoded_or_fullwidth_is_refused(data: st.DataObject) -> None:
    text = data.draw(ipv4_spelling(data.draw(non_public_v4())))
    if data.draw(st.booleans()):
        text = text.translate(FULLWIDTH)
    else:
        text = "".join(f"%{ord(c):02X}" if data.draw(st.booleans()) else c for c in text)
    assert_refused_everywhere(text)


def test_names_that_look_numeric_are_names() -> None:
    """A host with a non-numeric part is a DNS name, judged when it resolves, not on its face."""
    for host in ("1e2.example", "0x7g.0.0.1.example", "example.com."):
        check_on_face(f"http://{host}/a.mp3")


def test_the_allowlist_still_admits_its_hosts_in_any_spelling() -> None:
    check_on_face("http://0177.0.0.1/a", allowlist=["127.0.0.0/8"])
    check_on_face("http://localhost./a", allowlist=["localhost"])
    assert [str(a) for a in resolve_checked_sync("http://127.1/a", allowlist=["127.0.0.1"])] == ["127.0.0.1"]
