"""Templates: Jinja2, sandboxed, a subject, a text part and an optional HTML part.

Shipped templates live in ``templates/<name>.subject``, ``.txt`` and ``.html`` in this
package and are copied into the database at start; the database copy is what is rendered,
and one edited through the API is never overwritten by a later deploy. Rendering is
sandboxed (no attribute access to Python internals) and strict (an undefined variable is an
error, not an empty string); the HTML part escapes every value.
"""

from __future__ import annotations

import dataclasses
from importlib.resources import files
from pathlib import Path
from typing import Any

from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

_text_env = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False)
_html_env = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=True)
MAX_SUBJECT = 200


class TemplateProblem(ValueError):
    """A template that does not compile or does not render with its context."""


@dataclasses.dataclass(frozen=True)
class Parts:
    subject: str
    text: str
    html: str | None


def check(parts: Parts) -> None:
    """Compile every part; a syntax error is refused with its line."""
    for name, source, env in (
        ("subject", parts.subject, _text_env),
        ("text", parts.text, _text_env),
        ("html", parts.html, _html_env),
    ):
        if source is None:
            continue
        try:
            env.parse(source)
        except TemplateError as exc:
            line = getattr(exc, "lineno", None)
            raise TemplateProblem(f"{name} part, line {line}: {exc}") from exc


def render(parts: Parts, context: dict[str, Any]) -> Parts:
    try:
        subject = _text_env.from_string(parts.subject).render(context)
        text = _text_env.from_string(parts.text).render(context)
        html = _html_env.from_string(parts.html).render(context) if parts.html else None
    except TemplateError as exc:
        raise TemplateProblem(f"cannot render: {exc}") from exc
    except Exception as exc:  # {{ 1/0 }}, {{ "a" + 1 }}: the template's fault all the same
        raise TemplateProblem(f"cannot render: {type(exc).__name__}: {exc}") from exc
    # A subject is one header line: no line breaks can get in (header injection).
    subject = " ".join(subject.split())[:MAX_SUBJECT]
    if not subject:
        raise TemplateProblem("the subject renders empty")
    return Parts(subject, text, html)


def shipped() -> dict[str, Parts]:
    folder = Path(str(files("aidpost.mailer").joinpath("templates")))
    out: dict[str, Parts] = {}
    for subject_file in sorted(folder.glob("*.subject")):
        name = subject_file.stem
        html_file = folder / f"{name}.html"
        out[name] = Parts(
            subject=subject_file.read_text(encoding="utf-8").strip(),
            text=(folder / f"{name}.txt").read_text(encoding="utf-8"),
            html=html_file.read_text(encoding="utf-8") if html_file.exists() else None,
        )
    return out
