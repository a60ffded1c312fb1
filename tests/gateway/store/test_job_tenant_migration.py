"""Migration 10 (jobs know their tenant) and keys migration 2 (the operator scope) on files
written before them: existing rows keep working and are read as they were meant."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from support import opened, run

from gateway.auth.principal import KeyScope
from gateway.auth.store import KeyStore
from gateway.store.sqlite import functions
from gateway.store.sqlite.keys import MIGRATIONS as KEY_MIGRATIONS
from gateway.store.sqlite.migrations import MIGRATIONS

AT = "2026-01-01T00:00:00.000000Z"


def test_jobs_of_one_user_get_that_users_tenant(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    conn = sqlite3.connect(path, isolation_level=None)
    functions.install(conn)
    for version, script in enumerate(MIGRATIONS[:9], start=1):
        conn.executescript(f"BEGIN;\n{script}\nPRAGMA user_version = {version};\nCOMMIT;")
    for job_id, user in (("j-acme", "acme\x1falice"), ("j-default", "bob"), ("j-all", None)):
        conn.execute("INSERT INTO jobs (id, kind, user_id, status, created_at, updated_at) "
                     "VALUES (?, 'merge', ?, 'queued', ?, ?)", (job_id, user, AT, AT))
    conn.close()

    async def tenants() -> dict[str, str | None]:
        store = await opened(path)
        try:
            jobs = await store.recent_jobs(10)
            return {job.id: job.tenant for job in jobs}
        finally:
            await store.close()

    assert run(tenants()) == {"j-acme": "acme", "j-default": "default", "j-all": None}


def test_keys_made_before_the_operator_scope_keep_working(tmp_path: Path) -> None:
    path = tmp_path / "keys.sqlite3"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.executescript(f"BEGIN;\n{KEY_MIGRATIONS[0]}\nPRAGMA user_version = 1;\nCOMMIT;")
    conn.execute("INSERT INTO api_keys (key_id, hash, tenant, scope, created_at) "
                 "VALUES ('0123456789ab', 'h', 'acme', 'admin', ?)", (AT,))
    conn.close()
    with KeyStore(path) as keys:
        old = keys.find("0123456789ab")
        assert old is not None and (old.tenant, old.scope) == ("acme", KeyScope.ADMIN)
        _, operator = keys.create("ops", KeyScope.OPERATOR)
        assert {r.key_id: r.scope for r in keys.all()} == {
            "0123456789ab": KeyScope.ADMIN, operator.key_id: KeyScope.OPERATOR}
