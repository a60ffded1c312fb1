"""Every Locust scenario, ~3 s against a real gateway process and the real Triton server; the
seeding tool; the runner's report; loopback-only targets."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support.servers import gateway_process

from gateway.triton import TritonServer
from loadtest.locust.locust_run import LoadSpec, run_locust
from loadtest.locust.runner import main as runner_main
from loadtest.locust.runner import run_on_stack, write_summary
from loadtest.locust.scenarios import SCENARIOS
from loadtest.locust.seed import seed
from loadtest.locust.stack_runs import SeededStack
from loadtest.population import seeded_user

SEED_USERS, SEED_MEMORIES = 3, 30


@pytest.fixture(scope="module")
def gateway_url(triton: TritonServer, tmp_path_factory: pytest.TempPathFactory
                ) -> Iterator[str]:
    work = tmp_path_factory.mktemp("scenarios")
    with gateway_process(triton, work / "data", work,
                         env={"MEMORY_SQLITE_SYNCHRONOUS": "NORMAL"}) as served:
        seed(served.url, SEED_USERS, SEED_MEMORIES, batch=40, show_progress=False)
        yield served.url


def test_seeding_stores_every_user_and_memory(gateway_url: str) -> None:
    for i in range(SEED_USERS):
        page = httpx.get(f"{gateway_url}/v1/memories",
                         params={"user_id": seeded_user(i), "limit": 100}).json()
        assert len(page["results"]) == SEED_MEMORIES


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_scenario_runs_clean_for_three_seconds(scenario: str, gateway_url: str,
                                                triton: TritonServer, tmp_path: Path) -> None:
    spec = LoadSpec(scenario, users=4, duration_s=3, rate=4, seed_users=SEED_USERS,
                    env=(("LOADTEST_TRITON_HTTP", triton.http_url),
                         ("LOADTEST_SWAP_AT_S", "0.5")))
    requests = run_locust(gateway_url, spec, tmp_path, quiet=True)
    assert len(requests) >= spec.users  # every user got answers (ingest batches are slow)
    failures = {(str(n), str(k)) for n, k in zip(requests.name, requests.kind, strict=True)
                if k != "ok"}
    assert not failures, failures
    assert (tmp_path / "locust_stats.csv").exists() and (tmp_path / "report.html").exists()
    names = set(requests.name.tolist())
    expected = {"ingest": {"add"}, "search": {"search"}, "mixed": {"search"},
                "multi_tenant": {"search"}, "swap": {"search", "swap"}}[scenario]
    assert expected <= names, names


def test_runner_writes_summary_plots_and_locust_files(gateway_url: str, tmp_path: Path) -> None:
    code = runner_main(["--scenario", "search", "--users", "3", "--duration", "3",
                        "--seed-users", str(SEED_USERS), "--url", gateway_url,
                        "--out", str(tmp_path)])
    assert code == 0
    [out] = list(tmp_path.iterdir())
    summary = (out / "summary.md").read_text()
    assert "| target |" in summary and "p99.9" in summary
    for name in ("latency.png", "throughput.png", "errors.png", "summary.json",
                 "target/locust_stats.csv", "target/locust_stats_history.csv",
                 "target/report.html", "target/requests.csv"):
        assert (out / name).exists(), name


def test_mixed_run_reports_the_models_that_did_the_work(triton: TritonServer,
                                                        tmp_path: Path) -> None:
    """Single adds go to the batcher-free twin and searches to the gateway's encoder, not to
    ``embedder``: the report must count them wherever they ran."""
    template = tmp_path / "template"
    template.mkdir()
    spec = LoadSpec("mixed", users=4, duration_s=3, rate=4, seed_users=SEED_USERS)
    requests, result = run_on_stack(SeededStack(triton, template, None), spec, tmp_path / "run",
                                    admission="off", slo_ms=100)
    assert "add" in set(requests.name.tolist())
    assert "embedder" in result["triton"]
    served = {name for name, t in result["triton"].items() if t["requests"] > 0}
    encoded = result["query_encoder"]["calls"]
    assert served - {"embedder"} or encoded > 0, (result["triton"], encoded)
    summary = write_summary(tmp_path, "mixed", {"command": "test", "started": "now", "cpus": 1,
                                                "load": "0", "load_text": "", "gateway_env": {}},
                            {"run": result}, {"run": requests}, 100.0).read_text()
    assert all(f"Triton `{name}`" in summary for name in result["triton"])


def test_only_loopback_targets(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="not a loopback"):
        run_locust("http://10.0.0.1:8080", LoadSpec("search"), tmp_path)
    with pytest.raises(SystemExit, match="not a loopback"):
        runner_main(["--url", "http://example.com", "--out", str(tmp_path)])


def test_tools_do_not_import_locust() -> None:
    """Locust monkey-patches the whole process with gevent: only its own process may load it."""
    code = ("import sys, loadtest.locust.runner, loadtest.locust.campaign, loadtest.locust.seed, "
            "loadtest.locust.triton_sweep, loadtest.locust.perf_analyzer.inputs; "
            "assert 'gevent' not in sys.modules and 'locust' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
