"""aidpost: emergency help service for mass events."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("aidpost")
except PackageNotFoundError:  # pragma: no cover - running from a bare source tree
    __version__ = "0.0.0"
