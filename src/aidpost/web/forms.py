"""Form fields declared once: how each is shown, and how its text becomes the API's JSON.

The API validates (its messages are shown beside the form); this only converts types, so
a number field that holds no number is sent as the text it holds and the API names it.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Any

Kind = str  # text | email | tel | password | textarea | number | datetime | select | url


@dataclass(frozen=True)
class Field:
    name: str
    label: str
    kind: Kind = "text"
    required: bool = True
    maxlength: int | None = None
    options: tuple[tuple[str, str], ...] = ()
    integer: bool = False  # a select or number whose value the API wants as an integer
    hint: str = ""
    autocomplete: str = ""
    on_create: bool = True
    on_edit: bool = True

    def shown(self, editing: bool) -> bool:
        return self.on_edit if editing else self.on_create

    def value_for_input(self, value: Any) -> str:
        """An API value as the input holds it."""
        if value is None:
            return ""
        if self.kind == "datetime" and isinstance(value, str):
            try:
                at = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                return value
            return at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M")
        return str(value)

    def to_api(self, text: str) -> Any:
        text = text.strip() if self.kind not in ("password", "textarea") else text
        if self.kind == "datetime" and text:
            try:
                at = dt.datetime.fromisoformat(text)
            except ValueError:
                return text
            if at.tzinfo is None:
                at = at.replace(tzinfo=dt.UTC)
            return at.isoformat().replace("+00:00", "Z")
        if self.kind == "number" and text:
            try:
                number = int(text) if self.integer else float(text)
            except ValueError:
                return text
            # nan, inf and 1e999 are no JSON: the API names the field instead.
            return number if math.isfinite(number) else text
        if self.integer and text:
            try:
                return int(text)
            except ValueError:
                return text
        if self.kind == "url" and not text:
            return None
        return text


def body(fields: tuple[Field, ...], form: dict[str, str], editing: bool) -> dict[str, Any]:
    """The API body from a posted form: every shown field; an edit leaves out untouched
    optional fields that are empty (PATCH: absent means unchanged)."""
    out: dict[str, Any] = {}
    for f in fields:
        if not f.shown(editing):
            continue
        text = form.get(f.name, "")
        if editing and not text and f.kind == "password":
            continue
        out[f.name] = f.to_api(text)
    return out


def values(fields: tuple[Field, ...], entity: dict[str, Any]) -> dict[str, str]:
    return {f.name: f.value_for_input(entity.get(f.name)) for f in fields if f.kind != "password"}
