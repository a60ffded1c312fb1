"""Admission control: bounded concurrency per route class, priorities, fair share, deadlines.

    limiter.py     ClassLimiter: N running, a bounded priority queue, fast refusal beyond it
    tenants.py     TenantPolicy hook: FairShare (cap per tenant), RateLimit (token bucket)
    deadline.py    Deadline in a context variable; inference_timeout() for the Triton client
    controller.py  AdmissionController: one limiter per route class, from Settings, metrics
    middleware.py  Admission: the pure-ASGI edge that classifies, admits or sheds (429)
    activity.py    RequestActivity: client requests in flight, for background work to yield
"""

from gateway.admission.controller import ROUTE_CLASSES, AdmissionController
from gateway.admission.deadline import Deadline, current_deadline, deadline_scope, inference_timeout
from gateway.admission.limiter import ClassLimiter, Priority
from gateway.admission.middleware import Admission, route_class
from gateway.admission.tenants import FairShare, RateLimit, TenantPolicy

__all__ = [
    "ROUTE_CLASSES",
    "Admission",
    "AdmissionController",
    "ClassLimiter",
    "Deadline",
    "FairShare",
    "Priority",
    "RateLimit",
    "TenantPolicy",
    "current_deadline",
    "deadline_scope",
    "inference_timeout",
    "route_class",
]
