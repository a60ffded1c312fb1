"""The int8 copy of a version's graph for search queries (gateway.inference.int8_query)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from gateway.inference.int8_query import FOLDER, STAMP, already_int8, int8_version
from gateway.inference.local_encoder import PROBE_TEXTS, LocalQueryEncoder, load_runtime
from gateway.versions.control import repository_versions

REPOSITORY = Path(__file__).resolve().parents[2] / "model_repository"
VERSION = repository_versions(REPOSITORY, "embedder")[-1]


@pytest.fixture
def version_dir(tmp_path: Path) -> Path:
    """A writable copy of the exported version (without any int8 copy made before)."""
    target = tmp_path / "repo" / "embedder" / "1"
    shutil.copytree(REPOSITORY / "embedder" / VERSION, target,
                    ignore=shutil.ignore_patterns(FOLDER, "__pycache__"))
    return target


def test_the_copy_is_made_once_kept_beside_the_version_and_close_to_fp32(
        version_dir: Path, tmp_path: Path) -> None:
    folder = int8_version(version_dir, tmp_path / "fallback")
    assert folder == version_dir / FOLDER
    graph = folder / "model.onnx"
    assert graph.stat().st_size < (version_dir / "model.onnx").stat().st_size / 2
    made = graph.stat().st_mtime_ns
    assert int8_version(version_dir, tmp_path / "fallback") == folder
    assert graph.stat().st_mtime_ns == made  # not made again
    exact = load_runtime(version_dir, 1).embed(list(PROBE_TEXTS))
    quick = load_runtime(folder, 1).embed(list(PROBE_TEXTS))
    cosines = np.sum(exact * quick, axis=1)
    assert cosines.min() > 0.97
    assert cosines.min() < 0.99999  # an int8 graph, not the fp32 one again


def test_a_copy_of_another_graph_is_made_again(version_dir: Path, tmp_path: Path) -> None:
    folder = int8_version(version_dir, tmp_path / "fallback")
    (folder / STAMP).write_text(json.dumps({"sha256": "an older export"}), "utf-8")
    (folder / "model.onnx").write_bytes(b"stale")
    assert int8_version(version_dir, tmp_path / "fallback") == folder
    assert (folder / "model.onnx").stat().st_size > 1000
    assert not [p for p in version_dir.iterdir() if p.name.startswith(f".{FOLDER}")]


def test_a_version_that_cannot_hold_the_copy_gets_it_in_the_fallback(
        version_dir: Path, tmp_path: Path) -> None:
    """A read-only repository (EACCES, EROFS) or a blocked path: the copy goes to the
    fallback folder. A file where the copy's folder would go blocks it even for root."""
    (version_dir / FOLDER).write_text("not a folder")
    folder = int8_version(version_dir, tmp_path / "fallback")
    assert folder.parent == tmp_path / "fallback"
    assert (folder / "model.onnx").is_file()
    assert (version_dir / FOLDER).read_text() == "not a folder"
    assert not [p for p in version_dir.iterdir() if p.name.startswith(f".{FOLDER}")]
    assert int8_version(version_dir, tmp_path / "fallback") == folder  # found there next time


def test_a_version_exported_as_int8_is_not_quantised_again(version_dir: Path,
                                                           tmp_path: Path) -> None:
    manifest = version_dir / "export_manifest.json"
    data = json.loads(manifest.read_text("utf-8"))
    assert not already_int8(version_dir)
    data["options"]["quantize"] = "int8"
    manifest.write_text(json.dumps(data), "utf-8")
    assert already_int8(version_dir)

    async def scenario() -> None:
        reference = load_runtime(version_dir, 1).embed(list(PROBE_TEXTS))

        async def served(texts: list[str]) -> np.ndarray:
            return reference

        encoder = LocalQueryEncoder(version_dir.parents[1], "embedder", threads=1,
                                    precision="int8", int8_fallback=tmp_path / "fallback")
        try:
            assert await encoder.prepare("1", served)
            assert encoder.precisions == {"1": "int8"}
        finally:
            encoder.close()
        assert not (version_dir / FOLDER).exists()

    import asyncio
    asyncio.run(scenario())


def test_an_int8_copy_that_disagrees_with_triton_leaves_queries_fp32(
        version_dir: Path, tmp_path: Path) -> None:
    """The int8 bound: Triton's vectors far from the copy's (but equal to the fp32 run's,
    which is trusted) keep the version on fp32."""
    import asyncio

    async def scenario() -> None:
        reference = load_runtime(version_dir, 1).embed(list(PROBE_TEXTS))
        served_calls = []

        async def served(texts: list[str]) -> np.ndarray:
            served_calls.append(texts)
            return reference

        encoder = LocalQueryEncoder(version_dir.parents[1], "embedder", threads=1,
                                    precision="int8", int8_fallback=tmp_path / "fallback")
        try:
            assert await encoder.prepare("1", served)
            assert encoder.precisions == {"1": "int8"}
            vector = await encoder.embed(["bees"], "1")
            assert vector.shape == (1, reference.shape[1])
        finally:
            encoder.close()
        # Break the copy: a graph that answers other vectors is refused on the next prepare.
        runtime = version_dir / FOLDER / "embedding_runtime.py"
        runtime.write_text(runtime.read_text() + (
            "\\n_embed = EmbeddingRuntime.embed\\n"
            "EmbeddingRuntime.embed = lambda self, texts: np.ascontiguousarray("
            "_embed(self, texts)[:, ::-1])\\n"))
        again = LocalQueryEncoder(version_dir.parents[1], "embedder", threads=1,
                                  precision="int8", int8_fallback=tmp_path / "fallback")
        try:
            assert await again.prepare("1", served)
            assert again.precisions == {"1": "fp32"}
            np.testing.assert_allclose(await again.embed(list(PROBE_TEXTS), "1"), reference,
                                       atol=1e-5)
        finally:
            again.close()

    asyncio.run(scenario())


def test_a_changed_runtime_file_makes_the_copy_again(version_dir: Path, tmp_path: Path) -> None:
    folder = int8_version(version_dir, tmp_path / "fallback")
    runtime = version_dir / "embedding_runtime.py"
    runtime.write_text(runtime.read_text() + "\n# changed\n")
    assert int8_version(version_dir, tmp_path / "fallback") == folder
    assert (folder / "embedding_runtime.py").read_text().endswith("# changed\n")
