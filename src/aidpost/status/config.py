"""Which components the status page watches, from configuration.

``AIDPOST_STATUS_COMPONENTS_FILE`` names a JSON file (checked against
``components.schema.json``; a bad one stops the start with the place and the reason). Without
one, the list is derived from this process's settings: one component per readiness check
of its own ``/status`` (one-process mode serves every API), and a TCP check of every
PostgreSQL, Redis and SMTP server it uses.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aidpost.core.settings import Settings
from aidpost.core.validation import schema_problem


class ConfigError(ValueError):
    """A components file that cannot be used; the message names the place and the reason."""


@dataclass(frozen=True)
class ComponentConfig:
    id: str
    name: str
    kind: str
    target: str | None = None
    description: str | None = None
    expect: dict[str, Any] = field(default_factory=dict)
    interval: int = 30
    timeout: float = 5.0
    degraded_ms: int | None = None
    failure_threshold: int = 2
    tls_warn_days: int = 14
    auto_incident_minutes: int | None = None
    only_show_if_degraded: bool = False


@dataclass(frozen=True)
class GroupConfig:
    id: str
    name: str
    components: list[ComponentConfig]


def schema() -> dict[str, Any]:
    text = files("aidpost.status").joinpath("components.schema.json").read_text()
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def parse(data: Any, origin: str = "components") -> list[GroupConfig]:
    """Groups and components from decoded JSON; ConfigError for anything wrong."""
    problem = schema_problem(schema(), data)
    if problem is not None:
        raise ConfigError(f"{origin}: {problem}")
    groups, seen = [], set()
    for g in data["groups"]:
        members = []
        for c in g["components"]:
            if c["id"] in seen:
                raise ConfigError(f"{origin}: component id {c['id']!r} is used twice")
            seen.add(c["id"])
            if c["kind"] != "manual" and not c.get("target"):
                raise ConfigError(f"{origin}: component {c['id']!r} needs a target")
            members.append(ComponentConfig(**c))
        groups.append(GroupConfig(g["id"], g["name"], members))
    return groups


def load(path: str | Path) -> list[GroupConfig]:
    origin = str(path)
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{origin}: cannot be read ({exc.strerror})") from None
    except ValueError as exc:
        raise ConfigError(f"{origin}: not JSON ({exc})") from None
    return parse(data, origin)


def own_base(settings: Settings) -> str:
    """This process's own base URL, as a client on this machine reaches it."""
    host = settings.core.host
    if host in ("0.0.0.0", "", "::"):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.core.port}"


def _self_url(settings: Settings) -> str:
    return settings.status.self_url or own_base(settings) + "/status"


def _servers(settings: Settings) -> list[ComponentConfig]:
    out: dict[str, ComponentConfig] = {}
    urls = {
        settings.auth_db,
        settings.organizer_db,
        settings.participant_db,
        settings.messenger_db,
        settings.mailer_db,
        settings.status_db,
    }
    for url in sorted(urls):
        if url.startswith("postgresql"):
            parts = urlsplit(url)
            target = f"{parts.hostname or '127.0.0.1'}:{parts.port or 5432}"
            key = "postgresql-" + target.replace(":", "-").replace(".", "-")
            out[key] = ComponentConfig(key, f"PostgreSQL {target}", "tcp", target)
    bus = settings.core.bus_url
    if bus.startswith(("redis://", "rediss://")):
        parts = urlsplit(bus)
        target = f"{parts.hostname or '127.0.0.1'}:{parts.port or 6379}"
        out["redis"] = ComponentConfig("redis", f"Redis {target}", "tcp", target)
    mail = settings.mailer.transport_url
    if mail.startswith(("smtp://", "smtp+starttls://", "smtps://")):
        parts = urlsplit(mail)
        default = 465 if mail.startswith("smtps") else 25
        target = f"{parts.hostname or '127.0.0.1'}:{parts.port or default}"
        out["smtp"] = ComponentConfig("smtp", f"SMTP {target}", "tcp", target)
    return list(out.values())


# Readiness checks of one-process mode, as the public knows the services, and the
# component that serves each (None: every process has it).
SERVICES = (
    ("sign-in", "Sign-in", "auth_db", "Accounts, sign-in and tokens", "auth"),
    ("organizer-api", "Organizer console and API", "organizer_db", "Agencies, events, issues",
     "organizer"),
    ("participant-api", "Participant app and API", "participant_db", "Event search, help",
     "participant"),
    ("messenger", "Live chat", "messenger_db", "Help requests and chats", "messenger"),
    ("mailer", "Emails", "mailer_db", "Automated emails", "mailer"),
    ("bus", "Event bus", "bus", "Events between the services", None),
)  # fmt: skip


def derived(settings: Settings, components: tuple[str, ...]) -> list[GroupConfig]:
    """The default list for a process that runs ``components``."""
    url = _self_url(settings)
    services = [
        ComponentConfig(
            ident,
            name,
            "http",
            url,
            description=description,
            expect={"check": check},
            interval=30,
            degraded_ms=2000,
            auto_incident_minutes=5,
        )
        for ident, name, check, description, served_by in SERVICES
        if served_by is None or served_by in components
    ]
    groups = [GroupConfig("services", "Services", services)]
    servers = _servers(settings)
    if servers:
        groups.append(GroupConfig("infrastructure", "Infrastructure", servers))
    return groups


def configured(settings: Settings, components: tuple[str, ...]) -> list[GroupConfig]:
    if settings.status.components_file:
        return load(settings.status.components_file)
    return derived(settings, components)
