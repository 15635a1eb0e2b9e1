"""``aidpost secrets``: a production configuration, generated (ESME's generator, in Python).

From a small hosts file (the domain, where the databases and Redis live) ``generate``
makes strong random secrets once, keeps them in ``vault.json`` and writes one environment
file per component holding that component's settings and secrets and no others
(``aidpost.core.settings.SECRETS``), the database servers' files, a TLS certificate to start
with, the configuration of ESME's clients, and a ``.env.example`` without secrets. Every
file holding a secret is written with mode 0600 in a 0700 folder; nothing is overwritten
without ``force``, and a forced run keeps the vault's secrets unless asked to rotate them.

``check`` reads what was written back through aidpost's own settings and reports weak,
missing or placeholder values and files others can read.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema

from aidpost.core.settings import (
    SECRETS,
    SHARED_SECRETS,
    InsecureSettingsError,
    Settings,
    weakness,
)

COMPONENTS = tuple(SECRETS)
# The components whose data lives on each database server; participant data stands apart.
DB_SERVERS = {
    "organizer": ("auth", "organizer", "messenger", "mailer", "status"),
    "participant": ("participant",),
}
PLACEHOLDER = "change-me"
TRUSTED_PROXIES = "127.0.0.1,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16"
SECRET_FILE = 0o600

HOSTS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["domain"],
    "properties": {
        "domain": {"type": "string", "pattern": r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9-]+)*$"},
        "superadmin_email": {"type": "string", "format": "email"},
        "organizer_db": {"type": "string", "pattern": r"^[^\s:/@]+:\d{1,5}$"},
        "participant_db": {"type": "string", "pattern": r"^[^\s:/@]+:\d{1,5}$"},
        "redis": {"type": "string", "pattern": r"^[^\s:/@]+:\d{1,5}$"},
        # TLS to Redis (managed services: ElastiCache, Memorystore): rediss:// URLs.
        "redis_tls": {"type": "boolean"},
        "database_prefix": {"type": "string", "pattern": r"^[a-z][a-z0-9_]{0,39}$"},
        "smtp": {"type": "string", "pattern": r"^(smtp|smtps|smtp\+starttls)://[^\s@/]+$"},
        "smtp_username": {"type": "string"},
        "mail_from": {"type": "string", "minLength": 3},
        "internal_api_url": {"type": "string", "pattern": r"^https?://"},
    },
}
HOSTS_DEFAULTS = {
    "organizer_db": "db-organizer:5432",
    "participant_db": "db-participant:5432",
    "redis": "redis:6379",
    "database_prefix": "aidpost",
    # The web component reaches the APIs through the edge's internal, plain-HTTP listener.
    "internal_api_url": "http://haproxy:8080",
}
# Where the components find each other: the service names of every deployment shape.
SERVICES = {
    "auth": "http://auth:8000",
    "participant": "http://participant:8000",
    "messenger": "http://messenger-gateway:8000",
}


class SecretsError(Exception):
    """The hosts file is invalid, or an output exists and ``force`` was not given."""


@dataclass(frozen=True)
class Layout:
    """Where ``generate`` writes, under one folder (``envs/prod`` by default)."""

    root: Path

    @property
    def vault(self) -> Path:
        return self.root / "vault.json"

    def env(self, name: str) -> Path:
        return self.root / "servers" / f"{name}.env"

    @property
    def certificate(self) -> Path:
        return self.root / "tls" / "aidpost.pem"

    def client(self, name: str) -> Path:
        return self.root / "clients" / f"{name}.json"

    @property
    def example(self) -> Path:
        return self.root / ".env.example"

    def env_names(self) -> list[str]:
        return [*COMPONENTS, "db-organizer", "db-participant", "redis"]

    def outputs(self) -> list[Path]:
        return [
            *(self.env(n) for n in self.env_names()),
            self.certificate,
            self.client("organizer-ui"),
            self.client("participant-ui"),
            self.example,
        ]


def load_hosts(path: Path) -> dict[str, Any]:
    try:
        hosts = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise SecretsError(f"{path}: {exc}") from exc
    return hosts_from(hosts, str(path))


def hosts_from(hosts: object, where: str = "hosts") -> dict[str, Any]:
    """The hosts file's content checked against its schema, with the defaults filled in."""
    validator = jsonschema.Draft202012Validator(
        HOSTS_SCHEMA, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    errors = sorted(validator.iter_errors(hosts), key=lambda e: list(e.path))
    if errors:
        field = "/".join(str(p) for p in errors[0].path) or "the file"
        raise SecretsError(f"{where}: {field}: {errors[0].message}")
    assert isinstance(hosts, dict)
    out = {**HOSTS_DEFAULTS, **hosts}
    out.setdefault("superadmin_email", f"superadmin@{out['domain']}")
    out.setdefault("mail_from", f"aidpost <no-reply@{out['domain']}>")
    return out


def new_vault() -> dict[str, Any]:
    """Fresh secrets: 192 bits or more each, URL-safe so they sit in URLs unescaped."""
    return {
        "postgres": {server: secrets.token_urlsafe(24) for server in DB_SERVERS},
        "databases": {c: secrets.token_urlsafe(24) for users in DB_SERVERS.values() for c in users},
        "redis": secrets.token_urlsafe(32),
        "organizer_api_key": secrets.token_urlsafe(32),
        "participant_api_key": secrets.token_urlsafe(32),
        "messenger_api_key": secrets.token_urlsafe(32),
        "web_secret": secrets.token_urlsafe(48),
        "superadmin_password": secrets.token_urlsafe(24),
        # Given by the mail provider, never generated: fill it in when SMTP needs a login.
        "smtp_password": "",
    }


def _merge(kept: dict[str, Any], fresh: dict[str, Any]) -> dict[str, Any]:
    """The kept vault, with whatever a newer aidpost added taken from ``fresh``."""
    out = dict(fresh)
    for key, value in kept.items():
        out[key] = _merge(value, fresh[key]) if isinstance(value, dict) and key in fresh else value
    return out


def component_envs(hosts: dict[str, Any], vault: dict[str, Any]) -> dict[str, dict[str, str]]:
    """Each component's whole environment: its settings and its own secrets."""
    domain = hosts["domain"]
    public = f"https://{domain}"
    scheme = "rediss" if hosts.get("redis_tls") else "redis"
    redis = f"{scheme}://:{vault['redis']}@{hosts['redis']}/0"

    def database(component: str) -> str:
        server = "participant" if component == "participant" else "organizer"
        role = f"{hosts['database_prefix']}_{component}"
        password = vault["databases"][component]
        return f"postgresql+asyncpg://{role}:{password}@{hosts[server + '_db']}/{role}"

    common = {
        "AIDPOST_ENV": "production",
        "AIDPOST_HOST": "0.0.0.0",
        "AIDPOST_PORT": "8000",
        "AIDPOST_DATA_DIR": "/var/lib/aidpost",
        "AIDPOST_LOG_LEVEL": "INFO",
        "AIDPOST_BUS_URL": redis,
        "AIDPOST_RATE_LIMIT_STORAGE": redis,
        "AIDPOST_CORS_ORIGINS": json.dumps([public]),
        "AIDPOST_AUTH_URL": SERVICES["auth"],
        # The proxies whose X-Forwarded-For/-Proto count (client addresses for rate limits,
        # throttles and logs): the private networks the edge and the web component are on.
        # The edge replaces what clients send, so the nearest untrusted address is theirs.
        "FORWARDED_ALLOW_IPS": TRUSTED_PROXIES,
    }
    mailer = {
        "AIDPOST_MAILER_DATABASE_URL": database("mailer"),
        "AIDPOST_MAILER_TRANSPORT_URL": hosts.get("smtp", "file:outgoing-mail"),
        "AIDPOST_MAILER_FROM_ADDRESS": hosts["mail_from"],
        "AIDPOST_MAILER_MESSAGE_ID_DOMAIN": domain,
        "AIDPOST_MAILER_PUBLIC_URL": public,
        "AIDPOST_MAILER_PARTICIPANT_URL": SERVICES["participant"],
        "AIDPOST_MAILER_MESSENGER_URL": SERVICES["messenger"],
        "AIDPOST_PARTICIPANT_API_KEY": vault["participant_api_key"],
        "AIDPOST_MESSENGER_API_KEY": vault["messenger_api_key"],
    }
    if hosts.get("smtp_username"):
        mailer["AIDPOST_MAILER_SMTP_USERNAME"] = hosts["smtp_username"]
        mailer["AIDPOST_MAILER_SMTP_PASSWORD"] = vault["smtp_password"] or PLACEHOLDER
    own = {
        "auth": {
            "AIDPOST_AUTH_DATABASE_URL": database("auth"),
            # Auth keeps its credential tables in each realm's database.
            "AIDPOST_ORGANIZER_DATABASE_URL": database("organizer"),
            "AIDPOST_PARTICIPANT_DATABASE_URL": database("participant"),
        },
        "organizer": {
            "AIDPOST_ORGANIZER_DATABASE_URL": database("organizer"),
            "AIDPOST_ORGANIZER_API_KEY": vault["organizer_api_key"],
            "AIDPOST_AUTH_SUPERADMIN_EMAIL": hosts["superadmin_email"],
            "AIDPOST_AUTH_SUPERADMIN_PASSWORD": vault["superadmin_password"],
        },
        "participant": {
            "AIDPOST_PARTICIPANT_DATABASE_URL": database("participant"),
            "AIDPOST_PARTICIPANT_API_KEY": vault["participant_api_key"],
        },
        "messenger": {
            "AIDPOST_MESSENGER_DATABASE_URL": database("messenger"),
            "AIDPOST_MESSENGER_API_KEY": vault["messenger_api_key"],
            "AIDPOST_MESSENGER_PARTICIPANT_URL": SERVICES["participant"],
            "AIDPOST_PARTICIPANT_API_KEY": vault["participant_api_key"],
        },
        "mailer": mailer,
        "status": {
            "AIDPOST_STATUS_DATABASE_URL": database("status"),
            "AIDPOST_STATUS_PUBLIC_URL": public,
        },
        "web": {
            "AIDPOST_WEB_SECRET": vault["web_secret"],
            "AIDPOST_WEB_API_URL": hosts["internal_api_url"],
            # TLS ends at the edge; the hop to this process is plain HTTP.
            "AIDPOST_WEB_SECURE_COOKIES": "always",
        },
    }
    return {c: {**common, **values} for c, values in own.items()}


def server_envs(hosts: dict[str, Any], vault: dict[str, Any]) -> dict[str, dict[str, str]]:
    """The database servers' and Redis's environments (read by ``envs/prod/postgres``'s init
    script and the compose file)."""
    out = {}
    for server, users in DB_SERVERS.items():
        env = {
            "POSTGRES_USER": "postgres",
            "POSTGRES_PASSWORD": vault["postgres"][server],
            "POSTGRES_DB": "postgres",
            "AIDPOST_DB_PREFIX": hosts["database_prefix"],
            "AIDPOST_DB_USERS": " ".join(users),
        }
        for user in users:
            env[f"AIDPOST_DB_PASSWORD_{user.upper()}"] = vault["databases"][user]
        out[f"db-{server}"] = env
    out["redis"] = {"REDIS_PASSWORD": vault["redis"]}
    return out


def clients(hosts: dict[str, Any]) -> dict[str, dict[str, str]]:
    """ESME's clients' configuration (their ``config.json``), pointed at aidpost's edge."""
    public, ws = f"https://{hosts['domain']}", f"wss://{hosts['domain']}"
    messenger = {"messenger_api_url": public, "messenger_ws_url": ws}
    return {
        "organizer-ui": {"organizer_api_url": public, **messenger},
        "participant-ui": {"participant_api_url": public, **messenger},
    }


def example(hosts: dict[str, Any]) -> str:
    """Every variable of every component, secrets replaced by a placeholder."""
    placeholders = _merge({}, new_vault())
    _blank(placeholders)
    lines = [
        "# aidpost's production environment, one section per process; made by",
        "# `aidpost secrets generate`, which fills in real secrets (never commit those).",
    ]
    everything = {**component_envs(hosts, placeholders), **server_envs(hosts, placeholders)}
    for name, env in everything.items():
        lines += ["", f"# servers/{name}.env"]
        lines += [f"{key}={value}" for key, value in env.items()]
    return "\n".join(lines) + "\n"


def _blank(vault: dict[str, Any]) -> None:
    for key, value in vault.items():
        if isinstance(value, dict):
            _blank(value)
        else:
            vault[key] = PLACEHOLDER


def self_signed(domain: str, days: float = 90, since_days: float = 5 / 1440) -> bytes:
    """A certificate and key (PEM, as HAProxy reads them) to start with, until a real one
    (ACME) replaces it: ECDSA P-256, valid from ``since_days`` ago for ``days`` more days."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, domain)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=since_days))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(domain)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write(path: Path, data: str | bytes, mode: int = SECRET_FILE) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    raw = data.encode() if isinstance(data, str) else data
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)  # also when the file was there with looser permissions
        os.write(fd, raw)
    finally:
        os.close(fd)


def _env_text(env: dict[str, str]) -> str:
    return "".join(f"{key}={value}\n" for key, value in env.items())


def generate(
    hosts_file: Path, root: Path, *, force: bool = False, rotate: bool = False
) -> list[Path]:
    """Write the configuration under ``root``; returns what was written."""
    hosts = load_hosts(hosts_file)
    layout = Layout(root)
    # The example holds no secret (one is committed beside compose.yaml): always rewritten.
    existing = [p for p in layout.outputs() if p.exists() and p != layout.example]
    if existing and not force:
        raise SecretsError(
            f"{existing[0]} exists; --force rewrites it (keeping the secrets of vault.json)"
        )
    if layout.vault.exists() and not rotate:
        vault = _merge(json.loads(layout.vault.read_text()), new_vault())
    else:
        vault = new_vault()
    written = []

    def write(path: Path, data: str | bytes, mode: int = SECRET_FILE) -> None:
        _write(path, data, mode)
        written.append(path)

    write(layout.vault, json.dumps(vault, indent=2) + "\n")
    for name, env in {**component_envs(hosts, vault), **server_envs(hosts, vault)}.items():
        write(layout.env(name), _env_text(env))
    if rotate or not layout.certificate.exists():
        write(layout.certificate, self_signed(hosts["domain"]))
    for name, config in clients(hosts).items():
        write(layout.client(name), json.dumps(config, indent=2) + "\n", 0o644)
    write(layout.example, example(hosts), 0o644)
    return written


def read_env(path: Path) -> dict[str, str]:
    """KEY=value lines, as compose's ``env_file`` and ``kubectl --from-env-file`` read them."""
    out = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, sep, value = line.partition("=")
            if sep:
                out[key.strip()] = value
    return out


@dataclass
class Finding:
    path: Path
    problem: str

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}"


def settings_of(env: dict[str, str]) -> Settings:
    """aidpost's settings as a process given exactly ``env`` would see them."""
    saved = dict(os.environ)
    try:
        os.environ.clear()
        os.environ.update(env)
        return Settings()
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _url_password(url: str) -> str | None:
    try:
        return urlsplit(url).password
    except ValueError:
        return None


def check(root: Path) -> list[Finding]:
    """What is weak, missing, a placeholder or readable by others under ``root``."""
    layout = Layout(root)
    findings: list[Finding] = []
    for name in COMPONENTS:
        path = layout.env(name)
        if not path.exists():
            findings.append(Finding(path, "missing (run `aidpost secrets generate`)"))
            continue
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            findings.append(Finding(path, f"mode {mode:04o}: others can read it (chmod 600)"))
        env = read_env(path)
        for key in (*SECRETS[name], *SHARED_SECRETS):
            if not env.get(key):
                findings.append(Finding(path, f"{key} is missing"))
        for key, value in env.items():
            if "://" in value:
                password = _url_password(value)
                problem = weakness(password) if password is not None else None
                if problem:
                    findings.append(Finding(path, f"{key}'s password {problem}"))
            elif value == PLACEHOLDER:
                findings.append(Finding(path, f"{key} is a placeholder"))
        try:
            settings_of(env).check_production([name])
        except InsecureSettingsError as exc:
            findings.append(Finding(path, str(exc).removeprefix("refusing to start in ")))
        except ValueError as exc:
            findings.append(Finding(path, f"not valid settings: {exc}"))
    for name in ("db-organizer", "db-participant", "redis"):
        path = layout.env(name)
        if not path.exists():
            findings.append(Finding(path, "missing (run `aidpost secrets generate`)"))
            continue
        for key, value in read_env(path).items():
            if "PASSWORD" in key and weakness(value):
                findings.append(Finding(path, f"{key} {weakness(value)}"))
    for path in (layout.vault, layout.certificate):
        if path.exists() and stat.S_IMODE(path.stat().st_mode) & 0o077:
            findings.append(Finding(path, "others can read it (chmod 600)"))
    return findings
