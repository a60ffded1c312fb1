"""Form and query fields checked with the API's own types, so the console takes exactly what
the API takes (a bad value is the API's 422, shown as a page)."""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter
from starlette.datastructures import FormData

from gateway.api.schemas import ScopeId
from gateway.errors import InvalidInput

_SCOPE_ID: TypeAdapter[str] = TypeAdapter(ScopeId)


def scope_id(value: object, field: str) -> str:
    """A user, agent or run id as the API accepts it (422 naming ``field`` otherwise)."""
    try:
        return _SCOPE_ID.validate_python(value)
    except ValueError as exc:
        raise InvalidInput.at((field,), "must be an id of 1 to 128 printable characters"
                              ) from exc


def optional_id(value: object, field: str) -> str | None:
    return None if value in (None, "") else scope_id(value, field)


def text_field(form: FormData, name: str) -> str | None:
    value = form.get(name)
    return value if isinstance(value, str) else None


def int_field(value: Any, field: str) -> int:
    try:
        return int(str(value).strip())
    except ValueError:
        raise InvalidInput.at((field,), "must be a whole number") from None


def float_field(value: Any, field: str) -> float | None:
    if value in (None, ""):
        return None
    try:
        return float(str(value).strip())
    except ValueError:
        raise InvalidInput.at((field,), "must be a number") from None
