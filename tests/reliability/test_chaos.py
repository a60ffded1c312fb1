"""The chaos harness, briefly: SIGKILL the gateway twice during ingest; nothing acknowledged is
lost and the store agrees with itself (``python -m loadtest.locust.chaos`` runs it 100 times)."""

from __future__ import annotations

from pathlib import Path

from loadtest.locust.chaos import run


def test_sigkill_during_ingest_loses_nothing_acknowledged(tmp_path: Path) -> None:
    report = run(kills=2, budget_s=300, writers=2, seed=3, workdir=str(tmp_path))
    assert report.kills == 2
    assert report.acknowledged > 0, "nothing was acknowledged: the check would prove nothing"
    assert report.searches_checked == report.acknowledged
    assert (report.lost, report.inconsistencies) == (0, 0), report.problems
    assert len(report.restart_s) == 2


def test_sigkill_during_ingest_on_postgres_loses_nothing_acknowledged(
        tmp_path: Path, postgres_url: str) -> None:
    report = run(kills=2, budget_s=300, writers=2, seed=4, workdir=str(tmp_path),
                 store_url=postgres_url)
    assert report.kills == 2
    assert report.acknowledged > 0, "nothing was acknowledged: the check would prove nothing"
    assert report.searches_checked == report.acknowledged
    assert (report.lost, report.inconsistencies) == (0, 0), report.problems
