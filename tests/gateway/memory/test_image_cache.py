"""The image-vector cache (``gateway.memory.image_cache``) on each real backend: it answers
as the store does, reuses its copy while the user's memories are unchanged, and reads again
after any change, written here or by a second store on the same data (another replica);
expiry and filters stay per search; the byte budget and a CLIP switch drop copies."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np
from support import memory, run

from gateway.domain.model import SearchFilters, StoredImage, StoredMemory
from gateway.memory.image_cache import ImageVectorCache
from gateway.memory.search import MAX_SKIPPED_EXPIRED
from gateway.metrics import Metrics
from gateway.store.base import Store

PAST, NOW = "2024-01-01T00:00:00.000000Z", "2025-01-01T00:00:00.000000Z"
LIVE = SearchFilters(live_at=NOW)


def picture(seed: int, model: str = "clip:1", user: str = "alice",
            **fields: object) -> StoredMemory:
    vector = np.random.default_rng(seed).standard_normal(8).astype(np.float32)
    image = StoredImage(b"\x89PNG fake", "image/png", 3, 2, model,
                        vector / np.linalg.norm(vector))
    return replace(memory(user=user, text="", modality="image", **fields), image=image)


def outcomes(metrics: Metrics) -> dict[str, float]:
    return {o: metrics.registry.get_sample_value("memory_image_cache_total", {"outcome": o})
            or 0.0 for o in ("hit", "filled", "bypassed")}


def same(found: tuple[list[str], np.ndarray], expected: tuple[list[str], np.ndarray]) -> bool:
    return found[0] == expected[0] and np.array_equal(found[1], expected[1])


def test_the_copy_is_reused_until_any_replica_changes_the_user(
        make_store: Callable[[], Store]) -> None:
    store, replica = make_store(), make_store()
    metrics = Metrics()
    cache = ImageVectorCache(store, 1 << 20, metrics)
    run(store.insert_many([picture(n) for n in range(3)] + [memory(text="words")]))

    first = run(cache.vectors("alice", "clip:1", LIVE))
    assert len(first[0]) == 3 and first[1].shape == (3, 8)
    assert same(first, run(store.image_vectors("alice", "clip:1", LIVE)))
    assert same(run(cache.vectors("alice", "clip:1", LIVE)), first)
    assert outcomes(metrics) == {"hit": 1.0, "filled": 1.0, "bypassed": 0.0}

    run(store.insert_many([picture(9, user="bob")]))  # another user's change: still good
    assert same(run(cache.vectors("alice", "clip:1", LIVE)), first)
    assert outcomes(metrics)["hit"] == 2.0

    added = picture(3)
    run(replica.insert_many([added]))  # another gateway's write is seen at once
    found = run(cache.vectors("alice", "clip:1", LIVE))
    assert added.memory.id in found[0] and len(found[0]) == 4
    assert outcomes(metrics)["filled"] == 2.0

    assert run(replica.delete(added.memory.id, NOW)) is not None
    assert same(run(cache.vectors("alice", "clip:1", LIVE)), first)
    assert outcomes(metrics) == {"hit": 2.0, "filled": 3.0, "bypassed": 0.0}


def test_expiry_is_applied_per_search_and_filters_go_to_the_store(
        make_store: Callable[[], Store]) -> None:
    store = make_store()
    metrics = Metrics()
    cache = ImageVectorCache(store, 1 << 20, metrics)
    lasting, ending = picture(1), picture(2, expires_at="2024-06-01T00:00:00.000000Z")
    tagged = picture(3, agent_id="scout")
    run(store.insert_many([lasting, ending, tagged]))

    before = run(cache.vectors("alice", "clip:1", SearchFilters(live_at=PAST)))
    assert ending.memory.id in before[0] and len(before[0]) == 3
    after = run(cache.vectors("alice", "clip:1", LIVE))  # the same copy, one picture expired
    assert same(after, run(store.image_vectors("alice", "clip:1", LIVE)))
    assert ending.memory.id not in after[0] and len(after[0]) == 2
    everything = run(cache.vectors("alice", "clip:1", SearchFilters()))  # include_expired
    assert len(everything[0]) == 3
    assert outcomes(metrics) == {"hit": 2.0, "filled": 1.0, "bypassed": 0.0}

    scout = SearchFilters(agent_id="scout", live_at=NOW)
    assert run(cache.vectors("alice", "clip:1", scout))[0] == [tagged.memory.id]
    assert outcomes(metrics)["bypassed"] == 1.0

    # more expired memories than a search leaves out one by one: the store filters
    gone = "2024-02-01T00:00:00.000000Z"
    run(store.insert_many([memory(text=f"old {n}", expires_at=gone)
                           for n in range(MAX_SKIPPED_EXPIRED)]))
    assert same(run(cache.vectors("alice", "clip:1", LIVE)),
                run(store.image_vectors("alice", "clip:1", LIVE)))
    assert outcomes(metrics) == {"hit": 2.0, "filled": 1.0, "bypassed": 2.0}


def test_the_budget_and_a_clip_switch_drop_copies(make_store: Callable[[], Store]) -> None:
    store = make_store()
    metrics = Metrics()
    one_user = 3 * 8 * 4 + 3 * 64  # three 8-d float32 vectors and their ids, as counted
    cache = ImageVectorCache(store, 2 * one_user, metrics)
    for user in ("ann", "ben", "cat"):
        run(store.insert_many([picture(n, user=user) for n in range(3)]))
    for user in ("ann", "ben", "cat"):  # the third pushes the least recently used out
        run(cache.vectors(user, "clip:1", LIVE))
    assert cache.held_bytes == 2 * one_user
    run(cache.vectors("cat", "clip:1", LIVE))
    run(cache.vectors("ann", "clip:1", LIVE))  # gone: read again
    assert outcomes(metrics) == {"hit": 1.0, "filled": 4.0, "bypassed": 0.0}

    run(store.insert_many([picture(7, model="clip:2", user="ann")]))
    assert len(run(cache.vectors("ann", "clip:2", LIVE))[0]) == 1  # the new space only
    assert cache.held_bytes == 8 * 4 + 64  # the old space's copies went

    off = ImageVectorCache(store, 0, metrics)
    assert same(run(off.vectors("ann", "clip:1", LIVE)),
                run(store.image_vectors("ann", "clip:1", LIVE)))
    assert outcomes(metrics)["bypassed"] == 1.0
