"""How an email leaves: a port with three adapters.

* ``SmtpTransport`` (``smtp://host:port``, ``smtp+starttls://``, ``smtps://``; user and
  password in the URL or settings) for production;
* ``FileTransport`` (``file:``, the default): each email written as an ``.eml`` file under
  the data directory, so the one-process mode sends nothing anywhere and shows everything;
* ``MemoryTransport`` (``memory:``) for tests that do not need SMTP.

A transport raises ``TemporaryFailure`` (try again later: connection refused, 4xx) or
``PermanentFailure`` (5xx: the server will never take it).
"""

from __future__ import annotations

import ssl
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

import aiosmtplib


class TemporaryFailure(Exception):
    pass


class PermanentFailure(Exception):
    pass


class Transport(Protocol):
    async def send(self, message: EmailMessage) -> None: ...


class MemoryTransport:
    def __init__(self) -> None:
        self.sent: list[EmailMessage] = []

    async def send(self, message: EmailMessage) -> None:
        self.sent.append(message)


class FileTransport:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    async def send(self, message: EmailMessage) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        name = str(message["Message-ID"]).strip("<>").replace("@", "_at_").replace("/", "_")
        (self.folder / f"{name}.eml").write_bytes(bytes(message))


class SmtpTransport:
    def __init__(
        self,
        url: str,
        *,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 30.0,
        verify_tls: bool = True,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtp+starttls", "smtps"):
            raise ValueError(f"unsupported mail URL scheme: {parts.scheme}")
        self.host = parts.hostname or "localhost"
        self.implicit_tls = parts.scheme == "smtps"
        self.starttls = parts.scheme == "smtp+starttls"
        self.port = parts.port or (465 if self.implicit_tls else 587 if self.starttls else 25)
        self.username = username or (unquote(parts.username) if parts.username else None)
        self.password = password or (unquote(parts.password) if parts.password else None)
        self.timeout = timeout
        self.tls_context = ssl.create_default_context()
        if not verify_tls:
            self.tls_context.check_hostname = False
            self.tls_context.verify_mode = ssl.CERT_NONE

    async def send(self, message: EmailMessage) -> None:
        try:
            await aiosmtplib.send(
                message,
                hostname=self.host,
                port=self.port,
                username=self.username,
                password=self.password,
                use_tls=self.implicit_tls,
                start_tls=bool(self.starttls),
                tls_context=self.tls_context,
                timeout=self.timeout,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            if all(500 <= r.code < 600 for r in exc.recipients):
                raise PermanentFailure(str(exc)) from exc
            raise TemporaryFailure(str(exc)) from exc
        except aiosmtplib.SMTPResponseException as exc:
            if 500 <= exc.code < 600:
                raise PermanentFailure(f"{exc.code} {exc.message}") from exc
            raise TemporaryFailure(f"{exc.code} {exc.message}") from exc
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise TemporaryFailure(f"{type(exc).__name__}: {exc}") from exc


def create_transport(url: str, data_dir: Path, **smtp: Any) -> Transport:
    """``memory:``, ``file:<folder>`` (relative to the data directory, or absolute), or an
    SMTP URL."""
    if url.startswith("memory:"):
        return MemoryTransport()
    if url.startswith("file:"):
        folder = Path(url[len("file:") :] or "outgoing-mail")
        return FileTransport(folder if folder.is_absolute() else data_dir / folder)
    return SmtpTransport(url, **smtp)
