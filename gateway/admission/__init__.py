"""Admission control: bounded concurrency per route class, priorities, fair share.

Request deadlines live in ``gateway.deadline`` (the inference clients read them too).

    limiter.py     ClassLimiter: N running, a bounded priority queue, fast refusal beyond it
    tenants.py     TenantPolicy hook: FairShare (cap per tenant), RateLimit (token bucket)
    controller.py  AdmissionController: one limiter per route class, from Settings, metrics
    middleware.py  Admission: the pure-ASGI edge that classifies, admits or sheds (429)
    activity.py    RequestActivity: client requests in flight, for background work to yield
"""
