"""A remote embedding version's declaration: ``<repository>/<model>/<N>.remote.toml``.

A version of the embedder may live on any server that speaks OpenAI's ``/v1/embeddings``
(Infinity, Hugging Face TEI, vLLM, NVIDIA NIM, OpenAI) instead of in Triton. The declaration
sits next to the numbered ONNX version folders, as a file rather than a folder, so Triton (which
takes every numbered folder for one of its versions) never sees it. The API key is never
written there: ``api_key_env`` names the environment variable that holds it.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, ValidationError

from gateway.errors import InvalidInput

REMOTE_SUFFIX = ".remote.toml"


class RemoteSpec(BaseModel):
    """The fields of ``<N>.remote.toml`` (docs/models.md, "Remote embedding versions")."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_url: HttpUrl  # the OpenAI-compatible root: ``<base_url>/embeddings`` is called
    model: Annotated[str, Field(min_length=1, max_length=256)]  # sent as ``"model"``
    dim: Annotated[int, Field(ge=1, le=65536)]  # checked at registration and on every answer
    api_key_env: Annotated[str | None, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")] = None
    batch_size: Annotated[int, Field(ge=1, le=2048)] = 32  # texts per HTTP request
    timeout_s: Annotated[float, Field(gt=0, le=600)] = 10.0  # per request, capped by deadlines
    max_connections: Annotated[int, Field(ge=1, le=256)] = 8  # the connection pool's bound
    retries: Annotated[int, Field(ge=0, le=10)] = 2  # extra attempts after a failed one
    backoff_s: Annotated[float, Field(ge=0, le=30)] = 0.1  # first retry delay, doubled after
    breaker_failures: Annotated[int, Field(ge=1, le=1000)] = 5  # consecutive failures: open
    breaker_reset_s: Annotated[float, Field(gt=0, le=3600)] = 10.0  # open this long, then trial
    retry_after_s: Annotated[int, Field(ge=1, le=3600)] = 2  # told to clients when it fails
    # How vectors travel: base64 float32 (falls back to floats on a server that refuses it),
    # or always JSON numbers.
    encoding_format: Literal["base64", "float"] = "base64"

    def api_key(self) -> str | None:
        """The key from the environment, read when the client is made (never stored)."""
        if self.api_key_env is None:
            return None
        value = os.environ.get(self.api_key_env)
        if not value:
            raise InvalidInput(f"remote embedder: environment variable {self.api_key_env} "
                               "(api_key_env) is not set")
        return value

    def endpoint(self) -> str:
        return str(self.base_url).rstrip("/") + "/embeddings"


def remote_spec_path(repository: Path, model: str, version: str) -> Path:
    return repository / model / f"{version}{REMOTE_SUFFIX}"


def remote_versions_on_disk(repository: Path, model: str) -> list[str]:
    """Version numbers declared remote for ``model`` (unsorted)."""
    folder = repository / model
    if not folder.is_dir():
        return []
    return [name.removesuffix(REMOTE_SUFFIX) for p in folder.iterdir()
            if (name := p.name).endswith(REMOTE_SUFFIX)
            and name.removesuffix(REMOTE_SUFFIX).isdigit() and p.is_file()]


def read_remote_spec(repository: Path, model: str, version: str) -> RemoteSpec | None:
    """The declaration of ``version``, None when it is not remote; ``InvalidInput`` with the
    file and the field at fault when it is malformed. Blocking (file I/O): call in a thread."""
    path = remote_spec_path(repository, model, version)
    if not path.is_file():
        return None
    if (repository / model / version).is_dir():
        raise InvalidInput(f"{model} version {version} is both a Triton folder and {path.name}; "
                           "keep one")
    try:
        return RemoteSpec.model_validate(tomllib.loads(path.read_text(encoding="utf-8")))
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInput(f"{path.name} is not valid TOML: {exc}") from exc
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'file'}: {e['msg']}"
                             for e in exc.errors())
        raise InvalidInput(f"{path.name}: {problems}") from exc
