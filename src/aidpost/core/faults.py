"""Fault injection for crash tests.

``AIDPOST_FAULTS="outbox.before_publish:help.requests=exit"`` makes the process die (as a
``kill -9`` would: no cleanup, no flush) when it reaches that point. Unset, every point is a
dictionary lookup that does nothing. Used by the tests that prove nothing is lost across
crashes; never set in production.
"""

from __future__ import annotations

import functools
import os

_EXIT_CODE = 137  # what a shell reports for a process killed by SIGKILL


@functools.cache
def _parse(raw: str) -> dict[str, str]:
    pairs = (item.split("=", 1) for item in raw.split(",") if "=" in item)
    return {name.strip(): action.strip() for name, action in pairs}


def point(name: str) -> None:
    """Crash here if the environment asks for it."""
    if _parse(os.environ.get("AIDPOST_FAULTS", "")).get(name) == "exit":
        os._exit(_EXIT_CODE)
