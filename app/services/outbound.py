"""Outbound request policy for callbacks and media URLs: http(s) only, resolved addresses public unless allowlisted."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

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
    host = _host_of(url)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, 443, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise URLNotAllowed(f"The host {host!r} does not resolve.") from exc
    return _checked(host, infos, allowlist)


def resolve_checked_sync(url: str, *, allowlist: Iterable[str] = ()) -> list[IPAddress]:
    """`resolve_checked` for code running in a thread (yt-dlp)."""
    host = _host_of(url)
    try:
        infos = socket.getaddrinfo(host, 443, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise URLNotAllowed(f"The host {host!r} does not resolve.") from exc
    return _checked(host, infos, allowlist)


def _host_of(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise URLNotAllowed(f"Only http:// and https:// URLs can be fetched, not {parts.scheme or 'this'}://.")
    return parts.hostname


def _checked(host: str, infos: Iterable[tuple[Any, ...]], allowlist: Iterable[str]) -> list[IPAddress]:
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
    allow = list(allowlist)
    for address in addresses:
        if not (_is_public(address) or _allowed(host, address, allow)):
            raise URLNotAllowed(
                f"The host {host!r} resolves to {address}, which is not a public address; "
                "add it to WHISPER_ALLOWED_HOSTS to allow it."
            )
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
