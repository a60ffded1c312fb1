"""The ``agent-memory`` command: its verb groups, ``--json`` for scripts, errors on stderr with
a non-zero status, and the older ``python -m gateway.X`` commands as shims onto it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from support import free_ports
from support.servers import serving
from typer.testing import CliRunner

from gateway.app import create_app
from gateway.cli.app import app
from gateway.settings import ROOT, Settings

runner = CliRunner()


def env_for(settings: Settings) -> dict[str, str]:
    return {"MEMORY_DATA_DIR": str(settings.data_dir), "COLUMNS": "200"}


def test_the_root_command_lists_every_verb_group() -> None:
    shown = runner.invoke(app, ["--help"], env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    for verb in ("serve", "triton", "keys", "models", "backup", "jobs"):
        assert verb in shown.stdout


def test_keys_create_list_as_json_and_revoke(tmp_path: Path) -> None:
    keys = str(tmp_path / "keys.sqlite3")
    created = runner.invoke(app, ["keys", "create", "--tenant", "acme", "--scope", "admin",
                                  "--name", "ops", "--keys", keys])
    assert created.exit_code == 0, created.output
    key = created.stdout.strip()  # the key alone on stdout, for KEY=$(...)
    assert key.startswith("amk_") and key not in created.stderr
    listed = runner.invoke(app, ["keys", "list", "--json", "--keys", keys])
    assert listed.exit_code == 0, listed.output
    [record] = json.loads(listed.stdout)
    assert (record["tenant"], record["scope"], record["name"], record["state"]) == (
        "acme", "admin", "ops", "active")
    assert key not in listed.stdout and key.split("_")[1] == record["key_id"]
    assert runner.invoke(app, ["keys", "revoke", record["key_id"], "--keys", keys]).exit_code == 0
    [revoked] = json.loads(runner.invoke(app, ["keys", "list", "--json", "--keys", keys]).stdout)
    assert revoked["state"] != "active"
    again = runner.invoke(app, ["keys", "revoke", record["key_id"], "--keys", keys])
    assert again.exit_code == 1 and "no active key" in again.stderr and again.stdout == ""


def test_backup_create_export_import_restore(settings: Settings, tmp_path: Path) -> None:
    with TestClient(create_app(settings)) as client:
        added = client.post("/v1/memories/batch", json={"items": [
            {"user_id": "alice", "text": t} for t in ("I hike", "I swim", "I read")]})
        assert added.status_code == 201, added.text
    env = env_for(settings)
    made = runner.invoke(app, ["backup", "create", str(tmp_path / "bk")], env=env)
    assert made.exit_code == 0 and "backup of 3 memories" in made.stdout, made.output
    refused = runner.invoke(app, ["backup", "create", str(tmp_path / "bk")], env=env)
    assert refused.exit_code == 1 and "not empty" in refused.stderr
    out = runner.invoke(app, ["backup", "export", str(tmp_path / "e.jsonl"), "--vectors"],
                        env=env)
    assert out.exit_code == 0 and "exported 3" in out.stdout, out.output
    other = {**env, "MEMORY_DATA_DIR": str(tmp_path / "other")}
    imported = runner.invoke(app, ["backup", "import", str(tmp_path / "e.jsonl")], env=other)
    assert imported.exit_code == 0, imported.output
    assert json.loads(imported.stdout)["imported"] == 3
    back = runner.invoke(app, ["backup", "restore", str(tmp_path / "bk"), "--force"], env=other)
    assert back.exit_code == 0 and "restored 3 memories" in back.stdout, back.output


def test_models_and_jobs_ask_a_running_gateway(settings: Settings) -> None:
    with serving(settings) as url:
        models = runner.invoke(app, ["models", "list", "--json", "--url", url])
        assert models.exit_code == 0, models.output
        assert json.loads(models.stdout)["embedder"]["active"] == "1"
        table = runner.invoke(app, ["models", "list", "--url", url], env={"COLUMNS": "200"})
        assert table.exit_code == 0 and "embedder" in table.stdout, table.output
        ran = runner.invoke(app, ["jobs", "run", "expire", "--url", url])
        assert ran.exit_code == 0, ran.output
        assert ran.stdout.strip() == "done"  # the final status alone on stdout
        jobs = runner.invoke(app, ["jobs", "list", "--json", "--url", url])
        assert jobs.exit_code == 0, jobs.output
        assert [(j["kind"], j["status"]) for j in json.loads(jobs.stdout)] == [
            ("expire", "done")]
        unknown = runner.invoke(app, ["models", "activate", "tokenizer", "2", "--url", url])
        assert unknown.exit_code == 2 and "unknown model" in unknown.stderr


def test_the_cli_sends_an_operator_key_made_by_the_cli(settings: Settings) -> None:
    keyed = settings.model_copy(update={"auth": "required"})
    env = env_for(keyed)
    made = {scope: runner.invoke(app, ["keys", "create", "--tenant", tenant, "--scope", scope],
                                 env=env).stdout.strip()
            for tenant, scope in (("ops", "operator"), ("acme", "admin"))}
    with serving(keyed) as url:
        listed = runner.invoke(app, ["models", "list", "--json", "--url", url],
                               env={"MEMORY_API_KEY": made["operator"]})
        assert listed.exit_code == 0, listed.output
        refused = runner.invoke(app, ["models", "list", "--url", url],
                                env={"MEMORY_API_KEY": made["admin"]})
        assert refused.exit_code == 1 and "operator" in refused.stderr
        ran = runner.invoke(app, ["jobs", "run", "prune", "--url", url],
                            env={"MEMORY_API_KEY": made["operator"]})
        assert ran.exit_code == 0 and ran.stdout.strip() == "done", ran.output
        mine = runner.invoke(app, ["jobs", "list", "--json", "--url", url],
                             env={"MEMORY_API_KEY": made["admin"]})
        assert mine.exit_code == 0 and json.loads(mine.stdout) == []  # not the operator's


def test_an_unreachable_gateway_is_an_error_on_stderr() -> None:
    url = f"http://127.0.0.1:{free_ports(1)[0]}"
    for verb in (["models", "list"], ["jobs", "list", "--json"]):
        failed = runner.invoke(app, [*verb, "--url", url])
        assert failed.exit_code == 2, failed.output
        assert "cannot reach the gateway" in failed.stderr and failed.stdout == ""


def test_serve_reports_a_triton_that_cannot_start(tmp_path: Path) -> None:
    env = {"MEMORY_DATA_DIR": str(tmp_path / "data"),
           "MEMORY_MODEL_REPOSITORY": str(tmp_path / "no-such-repository")}
    failed = runner.invoke(app, ["serve"], env=env)
    assert failed.exit_code == 1
    assert "error:" in failed.stderr and "no-such-repository" in failed.stderr


@pytest.mark.parametrize("module", ["gateway.keys", "gateway.models", "gateway.backup",
                                    "gateway.jobs", "gateway.cli"])
def test_the_python_m_commands_still_answer(module: str) -> None:
    shown = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True,
                           text=True, timeout=120, check=False, cwd=ROOT,
                           env={"PATH": "/usr/bin:/bin", "COLUMNS": "200"})
    assert shown.returncode == 0, shown.stderr
    assert "Usage:" in shown.stdout and "Commands" in shown.stdout
