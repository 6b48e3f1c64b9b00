"""Outbound request policy for callbacks and media URLs: http(s) only, resolved addresses public unless allowlisted."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit

from app.errors import URLNotAllowed

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _allowed(host: str, address: IPAddress, allowlist: Iterable[str]) -> bool:
    for entry in allowlist:
        if entry.lower() == host.lower():
            return True
        try:
            if address in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False


def _is_public(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_global
    return address.is_global and not address.is_multicast


async def resolve_checked(url: str, *, allowlist: Iterable[str] = ()) -> list[IPAddress]:
    """Resolve the URL's host and refuse it unless every address is public or allowlisted."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise URLNotAllowed(f"Only http:// and https:// URLs can be fetched, not {parts.scheme or 'this'}://.")
    host = parts.hostname
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, parts.port or 443, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise URLNotAllowed(f"The host {host!r} does not resolve.") from exc
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
    allow = list(allowlist)
    for address in addresses:
        if not (_is_public(address) or _allowed(host, address, allow)):
            raise URLNotAllowed(
                f"The host {host!r} resolves to {address}, which is not a public address; "
                "add it to WHISPER_ALLOWED_HOSTS to allow it."
            )
    return addresses


def check_on_face(url: str, *, allowlist: Iterable[str] = ()) -> None:
    """Refuse, without any DNS lookup, a URL that is not http(s) or names a loopback/private address or localhost."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise URLNotAllowed(f"Only http:// and https:// URLs are allowed, not {parts.scheme or 'this'}://.")
    host = parts.hostname.lower()
    allow = list(allowlist)
    if host == "localhost" or host.endswith(".localhost"):
        if host not in (entry.lower() for entry in allow):
            raise URLNotAllowed(f"{host} is not a public host; add it to WHISPER_ALLOWED_HOSTS to allow it.")
        return
    address = _literal_address(host)
    if address is not None and not (_is_public(address) or _allowed(host, address, allow)):
        raise URLNotAllowed(f"{address} is not a public address; add it to WHISPER_ALLOWED_HOSTS to allow it.")


def _literal_address(host: str) -> IPAddress | None:
    """An IP written in the host, including the decimal and hex forms browsers accept (2130706433, 0x7f000001)."""
    try:
        if host.isdigit():
            return ipaddress.ip_address(int(host))
        if host.startswith("0x") and all(c in "0123456789abcdef" for c in host[2:]):
            return ipaddress.ip_address(int(host, 16))
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None
