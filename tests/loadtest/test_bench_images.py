"""``make bench-images`` end to end at toy sizes: the tests' tiny CLIP on a real Triton, the
labelled set's quality, and the user with many pictures searched through a gateway with the
image-vector cache and one without."""

from __future__ import annotations

import json
from pathlib import Path

from loadtest.bench.images import main


def test_end_to_end_with_and_without_the_image_cache(tmp_path: Path) -> None:
    out = tmp_path / "results"
    assert main(["--tiny", "--rounds", "4", "--many", "30", "--out", str(out)]) == 0
    [path] = out.glob("images-*.json")
    report = json.loads(path.read_text())
    assert set(report["quality"]) == {"fused", "image_only", "text_only"}
    cache = report["image_cache"]
    assert cache["pictures"] == 30
    for side in ("cache", "no_cache"):
        assert 0 < cache[side]["p50_ms"] <= cache[side]["p99_ms"]
    # the cached side read the store once and reused it; the other read it every time
    assert cache["cache"]["reads"]["hit"] >= 4
    assert cache["no_cache"]["reads"].get("hit", 0) == 0
    assert cache["no_cache"]["reads"]["bypassed"] >= 5
    assert cache["p50_ratio"] > 0
