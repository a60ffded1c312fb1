"""Admission for the console's costly steps: a slot of the route class the API's own route
takes (``search`` for a search, ``ingest`` for an edit that may re-embed, ``admin`` for the
other changes), for the viewer's tenant. The admission middleware only sees API paths, so the
console asks the same controller itself; a shed step is the API's 429, shown as a page."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Literal

from fastapi import Request

from gateway.admission.limiter import Priority
from gateway.api.deps import gateway_state
from gateway.auth.principal import Principal

RouteClass = Literal["search", "ingest", "admin"]


def admitted(request: Request, caller: Principal,
             route_class: RouteClass) -> AbstractAsyncContextManager[None]:
    return gateway_state(request).admission.slot(route_class, Priority.INTERACTIVE,
                                                 tenant=caller.admission_label)
