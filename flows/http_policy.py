"""Which addresses `http_request` may reach, and URL joining that cannot change the host.

Flows run with other people's credentials and are written by many hands, so the bot refuses
to become a proxy into the network it runs in: loopback, private, link-local, shared
(carrier-grade NAT), multicast, reserved and unspecified addresses are refused, also when
they hide inside IPv6 (IPv4-mapped, 6to4, Teredo, NAT64). `FLOWBOT_ALLOWED_HTTP_HOSTS`
lists exceptions: host names, IP addresses or networks (`10.1.0.0/16`).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

NAT64 = ipaddress.ip_network("64:ff9b::/96")
DEFAULT_PORTS = {"http": 80, "https": 443}
# Characters that parsers disagree about, or that never belong in a request path.
_BAD_PATH = re.compile(r"[\x00-\x20\x7f\\]")


class HttpRefused(Exception):
    """The request was refused before any connection was attempted."""


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def is_public(ip: IPAddress) -> bool:
    """May the bot connect to this address without an explicit allowance?"""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id or ip.is_site_local:
            return False
        inner = _embedded_ipv4(ip)
        if inner is not None and not is_public(inner):
            return False
    special = (
        ip.is_loopback,
        ip.is_private,
        ip.is_link_local,
        ip.is_multicast,
        ip.is_reserved,
        ip.is_unspecified,
    )
    return ip.is_global and not any(special)


def parse_ip(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


@dataclass(frozen=True)
class AddressPolicy:
    """Host names, addresses and networks that are allowed although not public."""

    hosts: frozenset[str] = frozenset()
    networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def from_entries(cls, entries: Iterable[str]) -> AddressPolicy:
        hosts: set[str] = set()
        networks: list[IPNetwork] = []
        for raw in entries:
            entry = raw.strip().lower().strip("[]")
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                hosts.add(entry.rstrip("."))
        return cls(frozenset(hosts), tuple(networks))

    def host_allowed(self, host: str) -> bool:
        return host.lower().strip("[]").rstrip(".") in self.hosts

    def address_allowed(self, host: str, address: str) -> bool:
        """May `host`, resolved to `address`, be contacted?"""
        ip = parse_ip(address)
        if ip is None:
            return False
        if is_public(ip) or self.host_allowed(host):
            return True
        return any(ip.version == net.version and ip in net for net in self.networks)

    def check(self, host: str, addresses: Iterable[str]) -> list[str]:
        """The addresses to connect to; refuses when any of them is not allowed (a name
        that resolves to a public and a private address is refused as a whole)."""
        resolved = list(dict.fromkeys(addresses))
        if not resolved:
            raise HttpRefused(f"{host} does not resolve to any address")
        for address in resolved:
            if not self.address_allowed(host, address):
                where = host if host == address else f"{host} resolves to {address}, which"
                raise HttpRefused(
                    f"{where} is a loopback, private, link-local or reserved address; "
                    "requests there are refused unless FLOWBOT_ALLOWED_HTTP_HOSTS lists the host"
                )
        return resolved


@dataclass(frozen=True)
class Origin:
    scheme: str
    host: str
    port: int


def origin_of(url: str) -> Origin:
    """scheme, host and port of an http(s) URL; anything else is refused."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise HttpRefused("the URL is malformed") from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise HttpRefused("only http and https URLs are allowed")
    if not parts.hostname:
        raise HttpRefused("the URL has no host")
    if parts.username is not None or parts.password is not None:
        raise HttpRefused("credentials in URLs are not allowed; use a connection")
    return Origin(scheme, parts.hostname.lower().rstrip("."), port or DEFAULT_PORTS[scheme])


def validate_base_url(url: str) -> str:
    """A connection's base URL: http(s), a host, no credentials, query or fragment."""
    url = url.strip()
    origin_of(url)
    parts = urlsplit(url)
    if parts.query or parts.fragment:
        raise HttpRefused("the base URL may not have a query (?…) or a fragment (#…)")
    if _BAD_PATH.search(url):
        raise HttpRefused("the base URL contains spaces or backslashes")
    return url.rstrip("/")


def join_url(base_url: str, path: str) -> str:
    """Base URL plus a rendered path; the result must keep the base's scheme, host, port.

    The path is appended, never resolved as a URL of its own: `//evil.example`,
    `https://evil.example/` or `@evil.example` stay under the base or are refused.
    """
    path = path.strip()
    if _BAD_PATH.search(path):
        raise HttpRefused("the path contains spaces, control characters or backslashes")
    if "#" in path:
        path = path.split("#", 1)[0]
    base = base_url.rstrip("/")
    if not path:
        url = base
    elif path.startswith("?"):
        url = base + path
    else:
        url = base + "/" + path.lstrip("/")
    if origin_of(url) != origin_of(base_url):
        raise HttpRefused("the path may not change the connection's scheme, host or port")
    if urlsplit(url).netloc != urlsplit(base_url).netloc:
        raise HttpRefused("the path may not change the connection's scheme, host or port")
    return url


# --- the transport port: implemented with aiohttp in `bot.http_client`

DEFAULT_TIMEOUT = 15.0
MAX_TIMEOUT = 120.0
MAX_RESPONSE_BYTES = 1024 * 1024


class HttpFailed(Exception):
    """The request was sent (or attempted) and failed: timeout, connection, size cap.

    Messages name the host and the kind of failure only, never headers or bodies.
    """


class HttpTooLarge(HttpFailed):
    """The response was larger than allowed (trying again would not help)."""


@dataclass(frozen=True)
class HttpRequest:
    method: str
    url: str
    headers: tuple[tuple[str, str], ...] = ()
    query: tuple[tuple[str, str], ...] = ()
    body: bytes | None = None
    timeout: float = DEFAULT_TIMEOUT
    max_response_bytes: int = MAX_RESPONSE_BYTES


@dataclass(frozen=True)
class HttpResponse:
    status: int
    # Lower-case names; repeated headers joined with ", ".
    headers: dict[str, str]
    body: bytes


class HttpClient(Protocol):
    """Sends one request. Refuses (HttpRefused) before connecting when the host resolves to
    an address the AddressPolicy does not allow; never follows redirects."""

    async def send(self, request: HttpRequest) -> HttpResponse: ...
