"""The affinity proxy for tests: ``loadtest.haproxy``, skipped visibly where haproxy is
missing (``make test`` installs it)."""

from __future__ import annotations

import pytest

from loadtest import haproxy
from loadtest.haproxy import affinity_proxy

__all__ = ["affinity_proxy", "check_config", "require_haproxy"]


def require_haproxy() -> None:
    try:
        haproxy.haproxy_binary()
    except haproxy.HaproxyMissing as missing:
        pytest.skip(str(missing))


def check_config() -> str:
    require_haproxy()
    return haproxy.check_config()
