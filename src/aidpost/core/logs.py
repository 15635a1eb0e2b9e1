"""JSON log lines on stdout, each carrying the request id of the request that caused it."""

from __future__ import annotations

import contextvars
import datetime as dt
import itertools
import json
import logging
import secrets
import sys
from collections.abc import Callable
from typing import Any

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)

_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        rid = getattr(record, "request_id", None) or request_id.get()
        if rid:
            out["request_id"] = rid
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def _stamp_request_id(
    factory: Callable[..., logging.LogRecord],
) -> Callable[..., logging.LogRecord]:
    """Records remember the request id of the task that created them."""

    def make(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        if not hasattr(record, "request_id"):
            record.request_id = request_id.get()
        return record

    return make


_PREFIX = secrets.token_hex(8)
_counter = itertools.count(1)


def new_request_id() -> str:
    """Unique per process and across processes (random prefix), without a syscall each."""
    return f"{_PREFIX}{next(_counter):016x}"


def install_record_factory() -> None:
    """Make every log record carry the request id of the task that created it (idempotent)."""
    if not getattr(logging.getLogRecordFactory(), "_aidpost", False):
        factory = _stamp_request_id(logging.getLogRecordFactory())
        factory._aidpost = True  # type: ignore[attr-defined]
        logging.setLogRecordFactory(factory)


def configure(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    if not getattr(logging.getLogRecordFactory(), "_aidpost", False):
        factory = _stamp_request_id(logging.getLogRecordFactory())
        factory._aidpost = True  # type: ignore[attr-defined]
        logging.setLogRecordFactory(factory)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True
    logging.getLogger("alembic").setLevel(max(logging.WARNING, root.level))
