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


# -- the replica stack: docker/compose.replicas.yaml ----------------------------------------
def replicas() -> dict:
    return yaml.safe_load((DOCKER / "compose.replicas.yaml").read_text())


def test_replica_stack_builds_from_files_that_exist() -> None:
    services = replicas()["services"]
    assert set(services) == {"postgres", "triton-a", "triton-b", "gateway-a", "gateway-b",
                             "proxy"}
    for name, service in services.items():
        if "build" in service:
            context = (DOCKER / service["build"]["context"]).resolve()
            assert context.is_dir(), name
            assert (context / service["build"].get("dockerfile", "Dockerfile")).is_file(), name


def test_each_replica_has_its_own_triton_and_shares_one_postgres() -> None:
    services = replicas()["services"]
    fields = {f"MEMORY_{name.upper()}" for name in Settings.model_fields} | {"GATEWAY_PORT"}
    urls = set()
    for replica, triton in (("gateway-a", "triton-a"), ("gateway-b", "triton-b")):
        gateway = services[replica]
        environment = gateway["environment"]
        assert set(environment) <= fields, set(environment) - fields
        assert environment["MEMORY_TRITON_HOST"] == triton
        assert gateway["depends_on"][triton]["condition"] == "service_healthy"
        assert gateway["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert "ports" not in gateway  # reached through the proxy only
        urls.add(environment["MEMORY_STORE_URL"])
    [url] = urls
    assert url.startswith("postgresql://") and "@postgres:5432/" in url
    assert services["triton-a"]["deploy"] != services["triton-b"]["deploy"]  # a GPU each


def test_the_proxy_fronts_both_replicas_on_loopback() -> None:
    proxy = replicas()["services"]["proxy"]
    assert all(port.startswith("127.0.0.1:") for port in proxy["ports"])
    mounted = {v.split(":")[1]: v.split(":")[0] for v in proxy["volumes"]}
    config = (DOCKER / mounted["/usr/local/etc/haproxy/haproxy.cfg"]).resolve()
    assert config == (DOCKER / "haproxy" / "haproxy.cfg").resolve()
    environment = proxy["environment"]
    assert {environment["GATEWAY_A"], environment["GATEWAY_B"]} == {"gateway-a:8080",
                                                                    "gateway-b:8080"}
    text = config.read_text()
    for variable in ("PROXY_BIND", "GATEWAY_A", "GATEWAY_B"):
        assert f'"${{{variable}}}"' in text  # every address the file reads is given
