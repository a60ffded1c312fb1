"""Remote version declarations (``<N>.remote.toml``) and the circuit breaker's states, without
a server: what an operator can get wrong, and the breaker's thresholds."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.errors import InferenceUnavailable, InvalidInput
from gateway.inference.breaker import CircuitBreaker
from gateway.inference.remote_spec import read_remote_spec, remote_versions_on_disk
from gateway.versions.control import declared_versions, repository_versions


def _repository(tmp_path: Path, files: dict[str, str]) -> Path:
    (tmp_path / "embedder" / "1").mkdir(parents=True)
    for name, text in files.items():
        (tmp_path / "embedder" / name).write_text(text)
    return tmp_path


def test_a_declaration_reads_with_its_defaults(tmp_path: Path) -> None:
    repo = _repository(tmp_path, {"2.remote.toml": 'base_url = "http://h:1/v1/"\n'
                                                   'model = "m"\ndim = 8\n'})
    spec = read_remote_spec(repo, "embedder", "2")
    assert spec is not None
    assert (spec.endpoint(), spec.dim, spec.batch_size, spec.retries) == (
        "http://h:1/v1/embeddings", 8, 32, 2)
    assert spec.api_key() is None
    assert read_remote_spec(repo, "embedder", "1") is None  # a Triton version


def test_versions_on_disk_list_folders_and_declarations(tmp_path: Path) -> None:
    repo = _repository(tmp_path, {"3.remote.toml": "", "x.remote.toml": "", "notes.toml": ""})
    assert remote_versions_on_disk(repo, "embedder") == ["3"]
    assert repository_versions(repo, "embedder") == ["1"]  # what Triton loads
    assert declared_versions(repo, "embedder") == ["1", "3"]


@pytest.mark.parametrize(("text", "problem"), [
    ('base_url = "ftp://h"\nmodel = "m"\ndim = 8\n', "base_url"),
    ('base_url = "http://h"\nmodel = "m"\ndim = 0\n', "dim"),
    ('base_url = "http://h"\nmodel = "m"\ndim = 8\nbatch_size = 9999\n', "batch_size"),
    ('base_url = "http://h"\nmodel = "m"\ndim = 8\napi_key = "sk-secret"\n', "api_key"),
    ('base_url = "http://h"\nmodel = "m"\ndim = 8\napi_key_env = "A-B"\n', "api_key_env"),
    ("dim = [\n", "not valid TOML"),
])
def test_malformed_declarations_name_the_field(tmp_path: Path, text: str, problem: str) -> None:
    repo = _repository(tmp_path, {"2.remote.toml": text})
    with pytest.raises(InvalidInput) as refused:
        read_remote_spec(repo, "embedder", "2")
    assert "2.remote.toml" in str(refused.value.detail)
    assert problem in str(refused.value.detail)


def test_a_version_cannot_be_both_kinds(tmp_path: Path) -> None:
    repo = _repository(tmp_path, {"1.remote.toml": 'base_url = "http://h"\nmodel = "m"\n'
                                                   "dim = 8\n"})
    with pytest.raises(InvalidInput, match="both a Triton folder"):
        read_remote_spec(repo, "embedder", "1")


def test_the_key_comes_from_the_named_variable(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    repo = _repository(tmp_path, {"2.remote.toml": 'base_url = "https://h/v1"\nmodel = "m"\n'
                                                   'dim = 8\napi_key_env = "EMBED_KEY_T"\n'})
    spec = read_remote_spec(repo, "embedder", "2")
    assert spec is not None
    monkeypatch.delenv("EMBED_KEY_T", raising=False)
    with pytest.raises(InvalidInput, match="EMBED_KEY_T"):
        spec.api_key()
    monkeypatch.setenv("EMBED_KEY_T", "sk-test")
    assert spec.api_key() == "sk-test"
    assert "sk-test" not in spec.model_dump_json()  # the declaration never holds it


def test_the_breaker_opens_after_consecutive_failures_only() -> None:
    breaker = CircuitBreaker("s", failures=3, reset_s=3600)
    for _ in range(2):
        breaker.before_call()
        breaker.failed()
    breaker.succeeded()  # a success resets the count
    for _ in range(2):
        breaker.failed()
    assert breaker.state == "closed"
    breaker.failed()
    assert (breaker.state, breaker.opened) == ("open", 1)
    with pytest.raises(InferenceUnavailable) as refused:
        breaker.before_call()
    assert refused.value.retry_after is not None and refused.value.retry_after > 3000


def test_the_half_open_breaker_lets_one_trial_through() -> None:
    breaker = CircuitBreaker("s", failures=1, reset_s=0)  # open, and at once half-open
    breaker.failed()
    assert breaker.state == "half_open"
    breaker.before_call()  # the trial
    with pytest.raises(InferenceUnavailable):
        breaker.before_call()  # everyone else waits for it
    breaker.failed()  # the trial failed: open again
    assert breaker.opened == 2
    breaker.before_call()  # (reset_s=0) the next trial
    breaker.succeeded()
    assert breaker.state == "closed"
    breaker.before_call()
    breaker.before_call()
