"""Outbound request policy for callbacks and media URLs: http(s) only, resolved addresses public unless allowlisted."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from app.errors import URLNotAllowed

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _allowed(host: str, address: IPAddress, allowlist: Iterable[str]) -> bool:
    for entry in allowlist:
        if entry.lower().rstrip(".") == host:
            return True
        try:
            if address in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False


# IPv6 ranges that carry an IPv4 address in their last 32 bits (NAT64 well-known prefix, RFC 6052; IPv4-translated,
# RFC 2765; IPv4-compatible, RFC 4291): such an address is only as public as the IPv4 address it reaches.
_EMBEDS_IPV4 = tuple(ipaddress.IPv6Network(n) for n in ("64:ff9b::/96", "::ffff:0:0:0/96", "::/96"))
# IPv6 ranges never treated as public whatever they carry: local-use NAT64 (RFC 8215), Teredo (its client address is
# obfuscated and its relay reaches anything), deprecated site-local.
_NEVER_PUBLIC = tuple(ipaddress.IPv6Network(n) for n in ("64:ff9b:1::/48", "2001::/32", "fec0::/10"))
# IETF protocol assignments: Python's table calls parts of it global (192.0.0.8, ...), no media server lives there.
_NEVER_PUBLIC_V4 = ipaddress.IPv4Network("192.0.0.0/24")


def is_public(address: IPAddress) -> bool:
    """Whether `address` is a public unicast address, also through every IPv6 form that reaches an IPv4 one."""
    if isinstance(address, ipaddress.IPv6Address):
        if any(address in net for net in _NEVER_PUBLIC):
            return False
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and any(address in net for net in _EMBEDS_IPV4):
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return is_public(embedded)
    elif address in _NEVER_PUBLIC_V4:
        return False
    return address.is_global and not address.is_multicast


def check_address(host: str, address: IPAddress, *, allowlist: Iterable[str] = ()) -> None:
    """The outbound policy for one address `host` names or resolves to: public, or allowlisted by name or range.

    Every outbound request (media, pages and what yt-dlp asks for, callbacks, LLM calls) is judged here, at creation
    on the URL's face and again at connect time on each resolved address."""
    if not (is_public(address) or _allowed(host, address, allowlist)):
        named = "" if host == str(address) else f"The host {host!r} stands for {address}, and "
        raise URLNotAllowed(
            f"{named}{address} is not a public address; use a public URL, or add the host to WHISPER_ALLOWED_HOSTS "
            "to allow it."
        )


async def resolve_checked(url: str, *, allowlist: Iterable[str] = ()) -> list[IPAddress]:
    """Resolve the URL's host and refuse it unless every address is public or allowlisted."""
    host = _host_of(url)
    if (literal := literal_address(host)) is not None:
        return _checked(host, [literal], allowlist)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, 443, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise URLNotAllowed(f"The host {host!r} does not resolve; check the URL.") from exc
    return _checked(host, _addresses(infos), allowlist)


def resolve_checked_sync(url: str, *, allowlist: Iterable[str] = ()) -> list[IPAddress]:
    """`resolve_checked` for code running in a thread (yt-dlp)."""
    host = _host_of(url)
    if (literal := literal_address(host)) is not None:
        return _checked(host, [literal], allowlist)
    try:
        infos = socket.getaddrinfo(host, 443, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise URLNotAllowed(f"The host {host!r} does not resolve; check the URL.") from exc
    return _checked(host, _addresses(infos), allowlist)


def _host_of(url: str) -> str:
    """The URL's host as browsers read it (see `normalise_host`), without a trailing dot (`localhost.` is
    `localhost`)."""
    try:
        parts = urlsplit(url)
        hostname = parts.hostname
    except ValueError as exc:
        raise URLNotAllowed(f"The URL is malformed: {exc}.") from exc
    if parts.scheme not in ("http", "https") or not hostname:
        raise URLNotAllowed(f"Only http:// and https:// URLs can be fetched, not {parts.scheme or 'this'}://.")
    host = normalise_host(hostname)
    return host.rstrip(".") or host


# Full stops that IDNA (UTS 46) maps to "." before splitting a host into labels.
_FULL_STOPS = str.maketrans({"\u3002": ".", "\uff0e": ".", "\uff61": "."})


def normalise_host(hostname: str) -> str:
    """`hostname` as the WHATWG URL parser turns it before reading an address: percent-decoded, fullwidth and other
    compatibility characters mapped (NFKC), lower-cased, and a non-ASCII name in its IDNA (punycode) form, so
    `%31%32%37.0.0.2` and `１２７．０．０．２` are both 127.0.0.2 here, as for any client that fetches them."""
    host = unicodedata.normalize("NFKC", unquote(hostname)).translate(_FULL_STOPS).lower()
    if host.isascii():
        return host
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise URLNotAllowed(f"The host {hostname!r} is not a valid domain name; check the URL.") from exc


def _addresses(infos: Iterable[tuple[Any, ...]]) -> list[IPAddress]:
    return [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]


def _checked(host: str, addresses: list[IPAddress], allowlist: Iterable[str]) -> list[IPAddress]:
    allow = list(allowlist)
    for address in addresses:
        check_address(host, address, allowlist=allow)
    return addresses


@dataclass(frozen=True)
class Pinned:
    """A request aimed at a checked address: the URL with that address as its host, the Host header and, for
    https, the name TLS must verify (SNI), so the connection cannot land anywhere the check did not see."""

    url: str
    headers: dict[str, str]
    extensions: dict[str, Any]


def pin(url: str, address: IPAddress) -> Pinned:
    """`url` rewritten to connect to `address` (one of the addresses `resolve_checked` returned for it)."""
    parts = urlsplit(url)
    host = f"[{address}]" if address.version == 6 else str(address)
    netloc = f"{host}:{parts.port}" if parts.port else host
    extensions: dict[str, Any] = {"sni_hostname": parts.hostname} if parts.scheme == "https" else {}
    return Pinned(urlunsplit(parts._replace(netloc=netloc)), {"host": parts.netloc.rsplit("@", 1)[-1]}, extensions)


def check_on_face(url: str, *, allowlist: Iterable[str] = ()) -> None:
    """Refuse, without any DNS lookup, a URL that is not http(s), holds control characters, or names a non-public
    address or localhost."""
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        raise URLNotAllowed("The URL contains control characters (such as NUL or a line break); remove them.")
    host = _host_of(url)
    allow = [entry.lower().rstrip(".") for entry in allowlist]
    if host == "localhost" or host.endswith(".localhost"):
        if host not in allow:
            raise URLNotAllowed(f"{host} is not a public host; add it to WHISPER_ALLOWED_HOSTS to allow it.")
        return
    if (address := literal_address(host)) is not None:
        check_address(host, address, allowlist=allow)
    elif ":" in host:
        raise URLNotAllowed(f"[{host}] is not a valid IPv6 address.")


def literal_address(host: str) -> IPAddress | None:
    """The IP address a URL host spells, parsed as browsers (WHATWG URL) and inet_aton do: `[v6]`, and IPv4 in
    one to four parts, each decimal, octal (leading 0) or hex (0x), with an optional trailing dot; None for a name."""
    host = host.strip("[]") if host.startswith("[") else host
    if ":" in host:
        try:
            return ipaddress.IPv6Address(host.split("%", 1)[0])
        except ValueError:
            return None
    parts = host.split(".")
    if len(parts) > 1 and parts[-1] == "":
        parts.pop()
    numbers = [_ipv4_number(part) for part in parts]
    if not 1 <= len(parts) <= 4 or any(n is None for n in numbers):
        return None  # a name (or a form no parser takes as an address, which then does not resolve either)
    *head, last = [n for n in numbers if n is not None]
    if any(n > 255 for n in head) or last >= 256 ** (5 - len(parts)):
        return None
    value = last + sum(n << (8 * (3 - i)) for i, n in enumerate(head))
    return ipaddress.IPv4Address(value)


def _ipv4_number(part: str) -> int | None:
    """One part of an IPv4 host in any base the parsers accept, or None if it is not a number."""
    digits, base = part, 10
    if part[:2].lower() == "0x":
        digits, base = part[2:] or "0", 16
    elif len(part) > 1 and part.startswith("0"):
        digits, base = part[1:], 8
    allowed = "0123456789abcdefABCDEF"[: base + (6 if base == 16 else 0)]
    if not digits or any(c not in allowed for c in digits):
        return None
    return int(digits, base)
