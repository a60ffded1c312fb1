"""docker/ stays correct by construction: Docker cannot run here, so lint and cross-check it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from gateway.settings import ROOT, Settings

DOCKER = ROOT / "docker"
DOCKERFILES = [DOCKER / "gateway.Dockerfile", DOCKER / "triton" / "Dockerfile"]


def hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(found).exists():
        pytest.fail("hadolint is not installed: `make test` installs it with the [dev] extra")
    return found


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name + "/" + p.name)
def test_dockerfiles_pass_hadolint(dockerfile: Path) -> None:
    result = subprocess.run([hadolint(), "--no-color", str(dockerfile)],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def compose() -> dict:
    return yaml.safe_load((DOCKER / "compose.yaml").read_text())


def test_compose_builds_from_files_that_exist() -> None:
    services = compose()["services"]
    assert set(services) == {"triton", "gateway"}
    for service in services.values():
        build = service["build"]
        context = (DOCKER / build["context"]).resolve()
        assert context.is_dir()
        assert (context / build.get("dockerfile", "Dockerfile")).is_file()


def test_gateway_environment_names_real_settings() -> None:
    """Every variable compose sets must be one the gateway reads (typos fail silently)."""
    fields = {f"MEMORY_{name.upper()}" for name in Settings.model_fields} | {"GATEWAY_PORT"}
    environment = compose()["services"]["gateway"]["environment"]
    assert set(environment) <= fields, set(environment) - fields
    settings = Settings(**{  # the values parse as settings too
        name.removeprefix("MEMORY_").lower(): value for name, value in environment.items()
        if name.startswith("MEMORY_")
    })
    assert settings.triton_managed is False and settings.triton_host == "triton"


def test_gateway_waits_for_a_healthy_gpu_triton() -> None:
    services = compose()["services"]
    assert services["gateway"]["depends_on"]["triton"]["condition"] == "service_healthy"
    devices = services["triton"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["capabilities"] == ["gpu"]
    assert services["triton"]["volumes"] == ["./model_repository:/models:ro"]
    assert "--model-control-mode=explicit" in services["triton"]["command"]
    published = services["gateway"]["ports"]
    assert all(port.startswith("127.0.0.1:") for port in published)  # loopback only


def _mounts(service: dict) -> dict[str, str]:
    """Container path -> host path of a service's bind mounts."""
    found = {}
    for volume in service.get("volumes", []):
        host, container = volume.split(":")[:2]
        if host.startswith((".", "/")):
            found[container] = host
    return found


def test_gateway_sees_the_repository_triton_serves() -> None:
    """Model swaps read the versions on disk: the gateway's MEMORY_MODEL_REPOSITORY must be a
    mount of the very folder Triton serves (without it, activate answered 404 in compose)."""
    services = compose()["services"]
    triton_path = next(arg.split("=", 1)[1] for arg in services["triton"]["command"]
                       if arg.startswith("--model-repository="))
    gateway_path = services["gateway"]["environment"]["MEMORY_MODEL_REPOSITORY"]
    triton_host = _mounts(services["triton"])[triton_path]
    gateway_mount = next(v for v in services["gateway"]["volumes"]
                         if v.split(":")[1] == gateway_path)
    assert _mounts(services["gateway"])[gateway_path] == triton_host
    assert gateway_mount.endswith(":ro")  # the gateway never writes the repository
