"""A write's vectors in every live space, and client vectors checked against the model
(gateway/memory/vectors.py)."""

from __future__ import annotations

import numpy as np
import pytest

from gateway.errors import InvalidInput
from gateway.index.batcher import SearchBatcher
from gateway.index.exact import ExactIndex
from gateway.inference.client import ModelInfo
from gateway.memory.vectors import WriteVectors, client_vector
from gateway.versions.active import Space

ACTIVE = ModelInfo("embedder", "1", 3)
TARGET = ModelInfo("embedder", "2", 2)


def space(info: ModelInfo) -> Space:
    index = ExactIndex()
    return Space(info, index, SearchBatcher(index))


def test_without_a_migration_a_write_has_one_space_and_no_shadows() -> None:
    made = WriteVectors(0, space(ACTIVE), np.eye(3, dtype=np.float32))
    assert [s.info for s, _ in made.spaces()] == [ACTIVE]
    assert made.shadows([0, 2]) is None and made.shadow(1) is None


def test_during_a_migration_a_write_reaches_the_target_too() -> None:
    target_vectors = np.arange(6, dtype=np.float32).reshape(3, 2)
    made = WriteVectors(4, space(ACTIVE), np.eye(3, dtype=np.float32), space(TARGET),
                        target_vectors)
    assert [s.info for s, _ in made.spaces()] == [ACTIVE, TARGET]
    shadows = made.shadows([2, 0])
    assert shadows is not None and [label for label, _ in shadows] == ["embedder:2"] * 2
    assert [v.tolist() for _, v in shadows] == [[4.0, 5.0], [0.0, 1.0]]
    shadow = made.shadow(1)
    assert shadow is not None and shadow[1].tolist() == [2.0, 3.0]


def test_a_client_vector_is_normalised() -> None:
    vector = client_vector(ACTIVE, [3.0, 0.0, 4.0], ("embedding",))
    assert vector.dtype == np.float32
    assert np.allclose(vector, [0.6, 0.0, 0.8])


@pytest.mark.parametrize(("values", "message"), [
    ([1.0, 2.0], "expected 3 dimensions for embedder:1, got 2"),
    ([1.0, float("nan"), 0.0], "embedding values must be finite"),
    ([0.0, 0.0, 0.0], "embedding must have a non-zero, finite norm"),
])
def test_a_bad_client_vector_names_its_field(values: list[float], message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        client_vector(ACTIVE, values, ("items", 3, "embedding"))
    assert caught.value.field == ("items", 3, "embedding")
    assert caught.value.detail == message
    assert str(caught.value) == f"items.3.embedding: {message}"
