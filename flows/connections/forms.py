"""Checking what a person typed into the connect form, before anything is stored."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from flows.connections.errors import (
    ColonInUserName,
    InvalidBaseUrl,
    InvalidHeaderName,
    InvalidSecretField,
    MissingName,
    NameTooLong,
    ReservedHeaderName,
)
from flows.connections.model import (
    HEADER_NAME,
    HINT_FIELD,
    NAME_MAX,
    OPTIONAL_SECRET_FIELDS,
    RESERVED_HEADERS,
    SECRET_FIELDS,
    SECRET_MAX,
)
from flows.http_policy import HttpRefused, validate_base_url
from flows.secrets import mask

_LINE_BREAKS = "\r\n\x00"


@dataclass(frozen=True)
class ConnectionForm:
    """A submitted connect modal: a new connection (`connection_id` None, with `kind`) or
    new credentials for one (`connection_id`). `secrets` by field name."""

    name: str
    base_url: str
    secrets: Mapping[str, str | None] = field(default_factory=dict)
    header_name: str | None = None
    kind: str = ""
    connection_id: str | None = None


def clean_secrets(kind: str, values: Mapping[str, str | None]) -> dict[str, str]:
    cleaned: dict[str, str] = {}
    for name in SECRET_FIELDS[kind]:
        value = values.get(name)
        value = value.strip() if isinstance(value, str) else ""
        if not value and name not in OPTIONAL_SECRET_FIELDS:
            raise InvalidSecretField(name, "required")
        if len(value) > SECRET_MAX:
            raise InvalidSecretField(name, "too_long")
        if any(ch in value for ch in _LINE_BREAKS):
            raise InvalidSecretField(name, "line_break")
        cleaned[name] = value
    if kind == "http_basic" and ":" in cleaned["username"]:
        raise ColonInUserName()
    return cleaned


def clean_name(name: str) -> str:
    name = " ".join(name.split())
    if not name:
        raise MissingName()
    if len(name) > NAME_MAX:
        raise NameTooLong(NAME_MAX)
    return name


def clean_header_name(kind: str, header_name: str | None) -> str | None:
    if kind != "http_header":
        return None
    header_name = (header_name or "").strip()
    if not HEADER_NAME.match(header_name):
        raise InvalidHeaderName()
    if header_name.lower() in RESERVED_HEADERS:
        raise ReservedHeaderName(header_name)
    return header_name


def clean_base_url(url: str) -> str:
    try:
        return validate_base_url(url)
    except HttpRefused as exc:
        raise InvalidBaseUrl(str(exc)) from None


def hint(kind: str, values: Mapping[str, str]) -> str:
    return mask(values.get(HINT_FIELD[kind], ""))
