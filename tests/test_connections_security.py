"""Connections, the parts below Slack: encryption and keys, the address policy, URL joining,
and the aiohttp client against a real local server (the only address tests may contact)."""

from __future__ import annotations

import asyncio
import json
import stat
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from cryptography.fernet import Fernet

from bot.http_client import AiohttpHttpClient
from bot.keys import SecretKeyConfigError, key_file, load_keys, load_secret_box
from bot.settings import Settings
from flows.http_policy import (
    AddressPolicy,
    HttpFailed,
    HttpRefused,
    HttpRequest,
    is_public,
    join_url,
    parse_ip,
    validate_base_url,
)
from flows.secrets import SecretBox, SecretKeyError, SecretUnavailable, key_id, mask, parse_keys
from tests.support import local_http_server, recorded

# --------------------------------------------------------------------------- socket audit
# Every outgoing connect() of this process is recorded while a test listens: the proof that
# a refused request never reached the network.

_CONNECTS: list[Any] | None = None


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event == "socket.connect" and _CONNECTS is not None:
        _CONNECTS.append(args[1])


sys.addaudithook(_audit)


@pytest.fixture
def connects() -> Iterator[list[Any]]:
    global _CONNECTS
    _CONNECTS = []
    try:
        yield _CONNECTS
    finally:
        _CONNECTS = None


# --------------------------------------------------------------------------- the external API


@dataclass
class ApiServer:
    url: str
    port: int
    seen: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture
async def api() -> AsyncIterator[ApiServer]:
    server = ApiServer(url="", port=0)

    async def handle(request: web.Request) -> web.StreamResponse:
        server.seen.append(await recorded(request))
        if request.path == "/big":
            return web.Response(body=b"x" * (1024 * 1024 + 10))
        if request.path == "/slow":
            await asyncio.sleep(3)
            return web.Response(text="late")
        if request.path == "/redirect":
            raise web.HTTPFound("http://10.0.0.1/")
        return web.json_response({"ok": True, "path": request.path})

    async with local_http_server(handle) as url:
        server.url = url
        server.port = int(url.rsplit(":", 1)[1])
        yield server


# --------------------------------------------------------------------------- secrets


def test_secret_box_round_trip_and_masking() -> None:
    key = Fernet.generate_key().decode()
    box = SecretBox([key])
    token = box.encrypt({"token": "sk-live-abcdefghijklmnop"})
    assert "sk-live" not in token and "abcdefghijklmnop" not in token
    assert box.decrypt(token) == {"token": "sk-live-abcdefghijklmnop"}
    assert box.is_current(token)
    assert mask("sk-live-abcdefghijklmnop") == "••••mnop"
    assert mask("short-pass") == "••••"  # short secrets show nothing
    assert mask("") == "••••"


def test_rotation_keeps_secrets_and_old_keys_can_go() -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    token = SecretBox([old]).encrypt({"password": "hunter2-but-longer"})
    ring = SecretBox([new, old])
    assert ring.decrypt(token) == {"password": "hunter2-but-longer"}
    assert not ring.is_current(token)
    rotated = ring.rotate(token)
    assert ring.is_current(rotated)
    assert SecretBox([new]).decrypt(rotated) == {"password": "hunter2-but-longer"}
    with pytest.raises(SecretUnavailable) as info:
        SecretBox([new]).decrypt(token)
    assert "hunter2" not in str(info.value)
    assert key_id(new) != key_id(old) and len(key_id(new)) == 16


def test_a_malformed_key_is_refused_without_echoing_it() -> None:
    good = Fernet.generate_key().decode()
    with pytest.raises(SecretKeyError) as info:
        parse_keys(f"{good}, not-a-key-but-a-secret")
    assert "not-a-key-but-a-secret" not in str(info.value) and "#2" in str(info.value)
    assert parse_keys(f" {good} ,, ") == [good]


def test_key_file_is_generated_once_owner_only_and_reused(tmp_path: Path) -> None:
    settings = Settings(flowbot_data_dir=tmp_path / "data", flowbot_secret_key=None)
    first = load_keys(settings)
    path = key_file(settings)
    assert path.exists()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_keys(settings) == first
    token = load_secret_box(settings).encrypt({"token": "t0k3n-value-123456"})
    assert load_secret_box(settings).decrypt(token)["token"] == "t0k3n-value-123456"


def test_key_file_readable_by_others_is_tightened(tmp_path: Path) -> None:
    settings = Settings(flowbot_data_dir=tmp_path, flowbot_secret_key=None)
    path = key_file(settings)
    path.write_text(Fernet.generate_key().decode() + "\n")
    path.chmod(0o644)
    load_keys(settings)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_env_key_wins_and_a_bad_one_names_the_setting(tmp_path: Path) -> None:
    new, old = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings = Settings(flowbot_data_dir=tmp_path, flowbot_secret_key=f"{new},{old}")
    assert load_keys(settings) == [new, old]
    assert not key_file(settings).exists()
    bad = Settings(flowbot_data_dir=tmp_path, flowbot_secret_key="oops-secret")
    with pytest.raises(SecretKeyConfigError) as info:
        load_keys(bad)
    assert "FLOWBOT_SECRET_KEY" in str(info.value) and "oops-secret" not in str(info.value)


# --------------------------------------------------------------------------- address policy


@pytest.mark.parametrize(
    "address",
    [
        "10.0.0.1",
        "172.16.5.4",
        "192.168.1.1",
        "127.0.0.1",
        "127.255.0.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "239.255.255.250",
        "255.255.255.255",
        "240.0.0.1",
        "::1",
        "::",
        "fe80::1",
        "fc00::1",
        "fd12:3456::1",
        "ff02::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "64:ff9b::a9fe:a9fe",
        "2002:7f00:1::1",
    ],
)
def test_non_public_addresses_are_refused(address: str) -> None:
    ip = parse_ip(address)
    assert ip is not None and not is_public(ip)
    with pytest.raises(HttpRefused):
        AddressPolicy().check("example.test", [address])


@pytest.mark.parametrize("address", ["93.184.215.14", "8.8.8.8", "2606:4700:4700::1111"])
def test_public_addresses_pass(address: str) -> None:
    assert AddressPolicy().check("example.test", [address]) == [address]


def test_allowances_by_host_address_and_network() -> None:
    policy = AddressPolicy.from_entries(["Internal.Example", "127.0.0.1", "10.1.0.0/16", " "])
    assert policy.check("internal.example", ["10.9.9.9"]) == ["10.9.9.9"]
    assert policy.check("127.0.0.1", ["127.0.0.1"]) == ["127.0.0.1"]
    assert policy.check("svc", ["10.1.2.3"]) == ["10.1.2.3"]
    with pytest.raises(HttpRefused):
        policy.check("svc", ["10.2.0.1"])
    # A name with one private address among public ones is refused as a whole.
    with pytest.raises(HttpRefused):
        AddressPolicy().check("mixed.example", ["8.8.8.8", "10.0.0.1"])


def test_a_path_cannot_change_scheme_host_or_port() -> None:
    base = "https://api.example.com:8443/v1"
    assert join_url(base, "/expenses") == "https://api.example.com:8443/v1/expenses"
    assert join_url(base, "expenses?x=1") == "https://api.example.com:8443/v1/expenses?x=1"
    assert join_url(base, "") == base
    for path in ["//evil.example/x", "https://evil.example/", "@evil.example", ":80@evil"]:
        url = join_url(base, path)
        assert url.startswith("https://api.example.com:8443/v1/")
    for path in ["\\\\evil.example", "/a b", "/x\r\nHost: evil"]:
        with pytest.raises(HttpRefused):
            join_url(base, path)


def test_base_urls_are_http_with_a_host_and_nothing_hidden() -> None:
    assert validate_base_url(" https://api.example.com/v1/ ") == "https://api.example.com/v1"
    for url in [
        "ftp://api.example.com",
        "https://user:pass@api.example.com",
        "https://api.example.com/?key=secret",
        "https:///nohost",
        "api.example.com",
    ]:
        with pytest.raises(HttpRefused):
            validate_base_url(url)


# --------------------------------------------------------------------------- the client


async def test_client_sends_to_an_allowed_local_server(api: ApiServer) -> None:
    client = AiohttpHttpClient(AddressPolicy.from_entries(["127.0.0.1"]))
    response = await client.send(
        HttpRequest(
            "POST",
            api.url + "/items?a=1",
            headers=(("Authorization", "Bearer abc"), ("Content-Type", "application/json")),
            query=(("b", "2"),),
            body=b'{"x": 1}',
        )
    )
    assert response.status == 200
    assert json.loads(response.body) == {"ok": True, "path": "/items"}
    assert response.headers["content-type"].startswith("application/json")
    seen = api.seen[-1]
    assert seen["query"] == {"a": "1", "b": "2"}
    assert seen["headers"]["Authorization"] == "Bearer abc" and seen["body"] == b'{"x": 1}'


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.1/latest",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:9/",
        "http://0.0.0.0:9/",
        "http://2130706433/",
    ],
)
async def test_private_addresses_are_refused_before_connecting(
    url: str, connects: list[Any]
) -> None:
    client = AiohttpHttpClient(AddressPolicy())
    start = time.monotonic()
    with pytest.raises(HttpRefused):
        await client.send(HttpRequest("GET", url))
    assert time.monotonic() - start < 1
    assert connects == []


async def test_loopback_without_the_setting_is_refused_and_the_server_sees_nothing(
    api: ApiServer, connects: list[Any]
) -> None:
    client = AiohttpHttpClient(AddressPolicy())
    for url in (api.url + "/x", f"http://localhost:{api.port}/x"):
        with pytest.raises(HttpRefused) as info:
            await client.send(HttpRequest("GET", url))
        assert "FLOWBOT_ALLOWED_HTTP_HOSTS" in str(info.value)
    assert api.seen == [] and connects == []


async def test_redirects_are_not_followed(api: ApiServer) -> None:
    client = AiohttpHttpClient(AddressPolicy.from_entries(["127.0.0.1"]))
    response = await client.send(HttpRequest("GET", api.url + "/redirect"))
    assert response.status == 302
    assert len(api.seen) == 1


async def test_response_size_is_capped_and_slow_answers_time_out(api: ApiServer) -> None:
    client = AiohttpHttpClient(AddressPolicy.from_entries(["127.0.0.1"]))
    with pytest.raises(HttpFailed, match="larger than"):
        await client.send(HttpRequest("GET", api.url + "/big"))
    start = time.monotonic()
    with pytest.raises(HttpFailed, match="timed out"):
        await client.send(HttpRequest("GET", api.url + "/slow", timeout=0.3))
    assert time.monotonic() - start < 2


async def test_an_unreachable_port_fails_without_details(connects: list[Any]) -> None:
    client = AiohttpHttpClient(AddressPolicy.from_entries(["127.0.0.1"]))
    with pytest.raises(HttpFailed, match="could not connect"):
        await client.send(HttpRequest("GET", "http://127.0.0.1:1/"))
    assert connects and all(addr[0] == "127.0.0.1" for addr in connects)
