"""A gateway reached over real HTTP (see tests/client/conftest.py), and keys for it."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.auth.principal import KeyScope
from gateway.auth.store import KeyStore
from gateway.settings import Settings


@dataclass
class LiveGateway:
    url: str
    settings: Settings

    def key(self, tenant: str = "acme", scope: KeyScope = KeyScope.WRITE,
            rate_per_s: float | None = None) -> str:
        with KeyStore(self.settings.keys_path) as store:
            return store.create(tenant, scope, rate_per_s=rate_per_s)[0].secret_key
