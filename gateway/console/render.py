"""Pages: one Jinja2 template per page, everything escaped, and the console's own headers.

Autoescaping is on for every template, so memory text, metadata and user ids are text in the
page, never markup. Console answers carry a strict Content-Security-Policy (nothing but this
origin's own files, no inline script, forms post only here, never framed); the gateway's other
security headers (``gateway.api.security``) are added to every answer as before.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse

PACKAGE = Path(__file__).resolve().parent
CONSOLE_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'")
PREFIX = "/console"


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(PACKAGE / "templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True)
    env.filters["pretty"] = lambda value: json.dumps(value, indent=2, sort_keys=True,
                                                     ensure_ascii=False, default=str)
    env.filters["num"] = lambda value, digits=4: "—" if value is None else f"{value:.{digits}f}"
    return env


def page(request: Request, template: str, context: dict[str, Any], *,
         status_code: int = 200) -> HTMLResponse:
    """The rendered template with the console's headers; ``context`` adds to the request's
    own (the viewer and its CSRF token, set by ``gateway.console.auth``)."""
    base = {"viewer": None, "csrf": "", "auth_required": True, "operator": False,
            **getattr(request.state, "console", {})}
    html = environment().get_template(template).render(
        **base, **context, prefix=PREFIX, path=request.url.path)
    return HTMLResponse(html, status_code=status_code, headers={"Content-Security-Policy":
                                                                 CONSOLE_CSP})
