"""Outbound HTTP for `http_request` steps, with aiohttp (the `flows.http_policy.HttpClient`).

Each request: resolve the host once, refuse it unless every address passes the
AddressPolicy, then connect to exactly those addresses (a pinned resolver, so a second DNS
answer cannot point the connection elsewhere — no DNS rebinding), keep TLS verifying the
original host name, follow no redirects, read no proxy settings from the environment,
bound the whole exchange by a timeout, and stop reading at the response size cap.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Sequence

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from flows.http_policy import (
    MAX_TIMEOUT,
    AddressPolicy,
    HttpFailed,
    HttpRefused,
    HttpRequest,
    HttpResponse,
    HttpTooLarge,
    parse_ip,
)

log = logging.getLogger(__name__)

DNS_TIMEOUT = 5.0
CHUNK = 64 * 1024


class _PinnedResolver(AbstractResolver):
    """Answers only for the host that was checked, with the addresses that were checked."""

    def __init__(self, host: str, results: Sequence[ResolveResult]) -> None:
        self.host = host
        self.results = list(results)

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if host != self.host:
            raise OSError(f"{host} was not checked")
        return [{**result, "port": port or result["port"]} for result in self.results]

    async def close(self) -> None:
        return None


class AiohttpHttpClient:
    def __init__(self, policy: AddressPolicy, user_agent: str = "Flowbot") -> None:
        self.policy = policy
        self.user_agent = user_agent

    async def _resolve(self, host: str, port: int) -> list[ResolveResult]:
        if parse_ip(host) is not None:
            ip = parse_ip(host)
            assert ip is not None
            family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
            return [
                {
                    "hostname": host,
                    "host": str(ip),
                    "port": port,
                    "family": family,
                    "proto": socket.IPPROTO_TCP,
                    "flags": 0,
                }
            ]
        loop = asyncio.get_running_loop()
        try:
            infos = await asyncio.wait_for(
                loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP),
                DNS_TIMEOUT,
            )
        except (OSError, asyncio.TimeoutError, UnicodeError):
            raise HttpFailed(f"{host} could not be resolved") from None
        results: list[ResolveResult] = []
        for family, _type, proto, _canon, sockaddr in infos:
            results.append(
                {
                    "hostname": host,
                    "host": str(sockaddr[0]),
                    "port": int(sockaddr[1]),
                    "family": int(family),
                    "proto": int(proto),
                    "flags": socket.AI_NUMERICHOST | socket.AI_NUMERICSERV,
                }
            )
        return results

    async def send(self, request: HttpRequest) -> HttpResponse:
        url = _checked_url(request.url)
        host, port = str(url.host), int(url.port or 0)
        results = await self._resolve(host, port)
        allowed = set(self.policy.check(host, [r["host"] for r in results]))
        pinned = [r for r in results if r["host"] in allowed]
        timeout = max(0.1, min(request.timeout, MAX_TIMEOUT))
        try:
            return await self._exchange(request, url, _PinnedResolver(host, pinned), timeout)
        except asyncio.TimeoutError:
            raise HttpFailed(f"the request to {host} timed out after {timeout:g}s") from None
        except aiohttp.ClientConnectorError as exc:
            reason = type(exc.os_error).__name__ if exc.os_error else "connection error"
            raise HttpFailed(f"could not connect to {host}:{port} ({reason})") from None
        except aiohttp.ClientError as exc:
            raise HttpFailed(f"the request to {host} failed ({type(exc).__name__})") from None

    async def _exchange(
        self, request: HttpRequest, url: URL, resolver: _PinnedResolver, timeout: float
    ) -> HttpResponse:
        connector = aiohttp.TCPConnector(resolver=resolver, use_dns_cache=False, force_close=True)
        headers = {"User-Agent": self.user_agent}
        headers.update(dict(request.headers))
        async with (
            aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=timeout),
                trust_env=False,
                cookie_jar=aiohttp.DummyCookieJar(),
            ) as session,
            session.request(
                request.method,
                url,
                headers=headers,
                params=list(request.query) or None,
                data=request.body,
                allow_redirects=False,
            ) as response,
        ):
            body = await _read_capped(response, str(url.host), request.max_response_bytes)
            return HttpResponse(
                status=response.status, headers=_joined_headers(response), body=body
            )


def _checked_url(raw: str) -> URL:
    """An http(s) URL with a host and a port, and no credentials in it."""
    try:
        url = URL(raw)
    except (ValueError, TypeError):
        raise HttpRefused("the URL is malformed") from None
    if url.scheme not in ("http", "https") or not url.host or url.port is None:
        raise HttpRefused("only http and https URLs with a host are allowed")
    if url.user is not None or url.password is not None:
        raise HttpRefused("credentials in URLs are not allowed; use a connection")
    return url


async def _read_capped(response: aiohttp.ClientResponse, host: str, limit: int) -> bytes:
    """The body, refused as soon as it grows past `limit` bytes."""
    body = bytearray()
    async for chunk in response.content.iter_chunked(CHUNK):
        body.extend(chunk)
        if len(body) > limit:
            raise HttpTooLarge(f"the response from {host} is larger than {limit} bytes")
    return bytes(body)


def _joined_headers(response: aiohttp.ClientResponse) -> dict[str, str]:
    """Lower-case names; a repeated header's values joined with ", "."""
    names: dict[str, str] = {}
    for name, value in response.headers.items():
        key = name.lower()
        names[key] = f"{names[key]}, {value}" if key in names else value
    return names
