"""Settings from the environment: one object per concern, one prefix per component.

Every component has its own database URL. When a URL is not given, it defaults to a
SQLite file under ``AIDPOST_DATA_DIR``; organizer and participant data never share a file.
In production mode (``AIDPOST_ENV=production``) missing or placeholder secrets stop the
start with a message that names the variable.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDERS = {"", "changethis", "change-me", "changeme", "secret", "password"}
DEV_SUPERADMIN_PASSWORD = "superadmin-password-dev"
DEV_API_KEY = "dev-api-key-not-for-production"
DEV_WEB_SECRET = "dev-web-secret-not-for-production"
DEV_SECRETS = {DEV_SUPERADMIN_PASSWORD, DEV_API_KEY, DEV_WEB_SECRET}


class InsecureSettingsError(ValueError):
    """A secret is missing or still a placeholder while running in production mode."""


class CoreSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AIDPOST_", extra="ignore")

    env: Literal["development", "production", "test"] = "development"
    data_dir: Path = Path("./data")
    host: str = "127.0.0.1"
    port: int = 8000
    bus_url: str = "memory://"
    bus_prefix: str = "aidpost:"
    redis_url: str | None = None
    cors_origins: list[str] = Field(default_factory=lambda: ["*"])
    rate_limit: str = "600/minute"
    rate_limit_storage: str = "memory://"
    log_level: str = "INFO"
    git_commit: str = "unknown"
    build_time: str = "unknown"
    # Base URL of the auth component, used by components that run apart from it.
    auth_url: str | None = None
    max_body_bytes: int = 1_048_576
    # A header the edge sets to the client's address and clients cannot set (CloudFront's
    # ``CloudFront-Viewer-Address``, or one a CloudFront Function writes); unset: the
    # address comes from the connection and the trusted proxies' X-Forwarded-For.
    client_address_header: str | None = None

    def sqlite_url(self, name: str) -> str:
        return f"sqlite+aiosqlite:///{(self.data_dir / f'{name}.db').as_posix()}"


class AuthSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AIDPOST_AUTH_", extra="ignore")

    database_url: str | None = None
    token_ttl_seconds: int = 24 * 3600
    issuer: str = "aidpost"
    superadmin_email: str = "superadmin@aidpost.example"
    superadmin_password: str = DEV_SUPERADMIN_PASSWORD
    # argon2id, OWASP: m=19 MiB, t=2, p=1 (lower only for tests).
    argon2_memory_kib: int = 19_456
    argon2_time_cost: int = 2
    throttle_attempts: int = 10
    throttle_window_seconds: int = 900


class OrganizerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AIDPOST_ORGANIZER_", extra="ignore")

    database_url: str | None = None
    api_key: str = DEV_API_KEY


class ParticipantSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AIDPOST_PARTICIPANT_", extra="ignore")

    database_url: str | None = None
    api_key: str = DEV_API_KEY


class MessengerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AIDPOST_MESSENGER_", extra="ignore")

    database_url: str | None = None
    # ESME: 60 s for the first frame, 30 min without a valid frame.
    auth_timeout_seconds: float = 60.0
    idle_timeout_seconds: float = 1800.0
    max_frame_bytes: int = 65_536
    max_message_chars: int = 4000
    actions_per_second: float = 20.0
    actions_burst: int = 40
    outbound_queue: int = 1000
    # Where to find participants' contact details when the participant component runs
    # in another process (``GET /participant-api/users`` with the participant API key).
    participant_url: str | None = None
    consumer_batch: int = 200
    # A consumer that finds commands waiting waits this long for more before handling them
    # (one transaction and commit for all); one that had to wait for its commands does not.
    consumer_linger_ms: float = Field(default=10.0, ge=0, le=100)
    # Key of the internal transcript API (the mailer sends chat transcripts).
    api_key: str = DEV_API_KEY
    # Commands go to this many shard streams by chat; each shard is handled by one consumer
    # at a time, so a chat's commands are handled in the order they were sent. Gateways and
    # consumers must agree; change it only with the command streams drained.
    command_shards: int = Field(default=16, ge=1, le=1024)
    # How long a dead consumer's shards wait before another consumer takes them.
    consumer_lease_ms: int = Field(default=5000, ge=500, le=600_000)
    # Back-pressure: a gateway refuses new commands for a shard whose commands not yet
    # handled by a consumer reach this many (an ``error`` frame: busy, try again), so an
    # overload slows senders down instead of growing the backlog without end. Below the
    # Redis bus's stream cap (1,000,000 entries), which then only ever trims handled ones.
    command_backlog_limit: int = Field(default=100_000, ge=1, le=500_000)
    # How often a gateway reads the shards' backlogs (one round trip for all of them).
    backlog_check_seconds: float = Field(default=1.0, gt=0, le=60)
    # What this process does: hold sockets ("gateway"), handle commands ("consumer"), or both.
    roles: str = "gateway,consumer"

    @property
    def gateway(self) -> bool:
        return "gateway" in self.roles.split(",")

    @property
    def consumer(self) -> bool:
        return "consumer" in self.roles.split(",")


class MailerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AIDPOST_MAILER_", extra="ignore")

    database_url: str | None = None
    # smtp://host:port, smtp+starttls://host:587, smtps://host:465 (user:password@ allowed),
    # file:<folder under the data dir> (the default: .eml files), or memory:.
    transport_url: str = "file:outgoing-mail"
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_timeout_seconds: float = 30.0
    smtp_verify_tls: bool = True
    from_address: str = "aidpost <no-reply@aidpost.example>"
    message_id_domain: str = "aidpost.example"
    # Where people open aidpost: links in emails (templates see it as ``public_url``).
    public_url: str = "http://127.0.0.1:8000"
    # Extra or replacing job files (*.json), checked against the schema at start.
    jobs_dir: str | None = None
    # Run the sending worker inside `aidpost serve` (else: `aidpost mailer run`).
    worker: bool = True
    poll_seconds: float = Field(default=2.0, gt=0)
    lease_seconds: float = Field(default=120.0, ge=5)
    batch: int = Field(default=20, ge=1, le=1000)
    backoff_base_seconds: float = Field(default=60.0, gt=0)
    backoff_max_seconds: float = Field(default=6 * 3600.0, gt=0)
    # Participants' addresses when the participant component runs in another process.
    participant_url: str | None = None
    # Chat transcripts when the messenger runs in another process (its API key:
    # AIDPOST_MESSENGER_API_KEY).
    messenger_url: str | None = None


class StatusSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AIDPOST_STATUS_", extra="ignore")

    database_url: str | None = None
    page_name: str = "aidpost"
    # Where the public opens the status page (links in feeds and emails); by default this
    # process's own address.
    public_url: str | None = None
    # Run the prober in this process (one prober at a time across replicas, by lease).
    prober: bool = True
    tick_seconds: float = Field(default=1.0, gt=0)
    # The components to watch (JSON, see docs/status.md); else derived from this process's
    # settings: its own /status checks and the servers it uses.
    components_file: str | None = None
    # What the prober checks for this process's own /status (defaults to host and port).
    self_url: str | None = None
    # Keep check results this many days (uptime is shown for 90).
    retention_days: int = Field(default=100, ge=91)


class WebSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AIDPOST_WEB_", extra="ignore")

    # Where the web component finds the APIs (/organizer-api, /participant-api,
    # /messenger-api); unset: the components of this process, called in process.
    api_url: str | None = None
    # Where browsers open the messenger's WebSocket; unset: the address they load pages from.
    messenger_ws_url: str | None = None
    # Signs the console's and the app's CSRF tokens.
    secret: str = DEV_WEB_SECRET
    # Mark cookies Secure: "auto" does so when the request came over HTTPS.
    secure_cookies: Literal["auto", "always", "never"] = "auto"


class Settings(BaseSettings):
    """The whole configuration; each component reads only its own part."""

    model_config = SettingsConfigDict(extra="ignore")

    core: CoreSettings = Field(default_factory=CoreSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    organizer: OrganizerSettings = Field(default_factory=OrganizerSettings)
    participant: ParticipantSettings = Field(default_factory=ParticipantSettings)
    messenger: MessengerSettings = Field(default_factory=MessengerSettings)
    mailer: MailerSettings = Field(default_factory=MailerSettings)
    status: StatusSettings = Field(default_factory=StatusSettings)
    web: WebSettings = Field(default_factory=WebSettings)

    @model_validator(mode="after")
    def _fill_database_urls(self) -> Settings:
        if self.auth.database_url is None:
            self.auth.database_url = self.core.sqlite_url("auth")
        if self.organizer.database_url is None:
            self.organizer.database_url = self.core.sqlite_url("organizer")
        if self.participant.database_url is None:
            self.participant.database_url = self.core.sqlite_url("participant")
        if self.messenger.database_url is None:
            self.messenger.database_url = self.core.sqlite_url("messenger")
        if self.mailer.database_url is None:
            self.mailer.database_url = self.core.sqlite_url("mailer")
        if self.status.database_url is None:
            self.status.database_url = self.core.sqlite_url("status")
        if self.organizer.database_url == self.participant.database_url:
            raise ValueError("organizer and participant data must not share a database")
        return self

    @property
    def auth_db(self) -> str:
        assert self.auth.database_url is not None
        return self.auth.database_url

    @property
    def organizer_db(self) -> str:
        assert self.organizer.database_url is not None
        return self.organizer.database_url

    @property
    def messenger_db(self) -> str:
        assert self.messenger.database_url is not None
        return self.messenger.database_url

    @property
    def mailer_db(self) -> str:
        assert self.mailer.database_url is not None
        return self.mailer.database_url

    @property
    def status_db(self) -> str:
        assert self.status.database_url is not None
        return self.status.database_url

    @property
    def participant_db(self) -> str:
        assert self.participant.database_url is not None
        return self.participant.database_url

    def secret_values(self) -> dict[str, str]:
        return {
            "AIDPOST_AUTH_SUPERADMIN_PASSWORD": self.auth.superadmin_password,
            "AIDPOST_ORGANIZER_API_KEY": self.organizer.api_key,
            "AIDPOST_PARTICIPANT_API_KEY": self.participant.api_key,
            "AIDPOST_MESSENGER_API_KEY": self.messenger.api_key,
            "AIDPOST_WEB_SECRET": self.web.secret,
        }

    def check_production(self, components: Sequence[str] | None = None) -> None:
        """Refuse to start in production with a missing or placeholder secret.

        Only the secrets that ``components`` use are checked, so each process's environment
        holds its own secrets and no others (see ``SECRETS``)."""
        if self.core.env != "production":
            return
        wanted = set(components or SECRETS)
        problems = []
        values = self.secret_values()
        names = sorted({n for c in wanted for n in SECRETS.get(c, ()) if n in values})
        for name in names:
            problem = weakness(values[name])
            if problem:
                problems.append(f"{name} {problem}")
        if "*" in self.core.cors_origins:
            problems.append("AIDPOST_CORS_ORIGINS must list origins, not '*'")
        if "web" in wanted and self.web.secure_cookies == "never":
            problems.append("AIDPOST_WEB_SECURE_COOKIES=never sends sessions over plain HTTP")
        if set(SECRETS) - wanted:  # components in processes of their own
            problems += self._split_problems(wanted)
        if problems:
            raise InsecureSettingsError("refusing to start in production: " + "; ".join(problems))

    def _split_problems(self, wanted: set[str]) -> list[str]:
        """What a process holding only some components cannot share with the others: an
        in-memory bus or rate-limit counter, or a database in a SQLite file of its own."""
        problems = []
        if self.core.bus_url.startswith("memory:"):
            problems.append(
                "AIDPOST_BUS_URL=memory:// reaches no other process; set a redis:// URL"
            )
        if self.core.rate_limit_storage.startswith("memory:"):
            problems.append(
                "AIDPOST_RATE_LIMIT_STORAGE=memory:// counts in this process alone; "
                "set a redis:// URL"
            )
        components = ("auth", "organizer", "participant", "messenger", "mailer", "status")
        urls = {
            f"AIDPOST_{c.upper()}_DATABASE_URL": str(getattr(self, c).database_url)
            for c in components
        }
        used = sorted({n for c in wanted for n in SECRETS.get(c, ()) if n in urls})
        for name in used:
            if urls[name].startswith("sqlite"):
                problems.append(
                    f"{name} is unset or SQLite, a file of this process alone; "
                    "set a postgresql:// URL"
                )
        return problems


# The secrets each component uses: what its process must be given, and all it is given.
SECRETS: dict[str, tuple[str, ...]] = {
    "auth": (
        "AIDPOST_AUTH_DATABASE_URL",
        "AIDPOST_ORGANIZER_DATABASE_URL",
        "AIDPOST_PARTICIPANT_DATABASE_URL",
    ),
    "organizer": (
        "AIDPOST_ORGANIZER_DATABASE_URL",
        "AIDPOST_ORGANIZER_API_KEY",
        "AIDPOST_AUTH_SUPERADMIN_PASSWORD",
    ),
    "participant": ("AIDPOST_PARTICIPANT_DATABASE_URL", "AIDPOST_PARTICIPANT_API_KEY"),
    "messenger": (
        "AIDPOST_MESSENGER_DATABASE_URL",
        "AIDPOST_MESSENGER_API_KEY",
        "AIDPOST_PARTICIPANT_API_KEY",
    ),
    "mailer": (
        "AIDPOST_MAILER_DATABASE_URL",
        "AIDPOST_MAILER_TRANSPORT_URL",
        "AIDPOST_PARTICIPANT_API_KEY",
        "AIDPOST_MESSENGER_API_KEY",
    ),
    "status": ("AIDPOST_STATUS_DATABASE_URL",),
    "web": ("AIDPOST_WEB_SECRET",),
}
# Every process holds these too: the bus and the shared rate limits (Redis, with its password).
SHARED_SECRETS = ("AIDPOST_BUS_URL", "AIDPOST_RATE_LIMIT_STORAGE")


def weakness(value: str) -> str | None:
    """Why ``value`` is not fit to be a production secret, or None."""
    if value.strip().lower() in PLACEHOLDERS or value in DEV_SECRETS:
        return "is missing or a placeholder"
    if len(value) < 16:
        return "must be at least 16 characters"
    return None


def load_settings(**overrides: object) -> Settings:
    return Settings(**overrides)  # type: ignore[arg-type]
