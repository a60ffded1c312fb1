"""The README's quick start, run as it stands against a real gateway and Triton, with the
client embedding the texts itself and without; and the key it used never reaches the logs."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from support.servers import LiveGateway

README = Path(__file__).resolve().parents[2] / "README.md"
HARDWARE = ("Ordered an RTX 4090 graphics card for the home lab.",
            "Asked whether the new laptop supports 64 GB of RAM.")


def quick_start_blocks() -> tuple[str, str]:
    section = README.read_text().split("## Quick start (Python client)", 1)[1]
    section = section.split("\n## ", 1)[0]
    setup, program = re.findall(r"```python\n(.*?)```", section, flags=re.S)[:2]
    return setup, program


@pytest.mark.parametrize("client_side_embedding", [True, False], ids=["embedding_fn", "server"])
def test_the_readme_quick_start_runs(live_gateway: LiveGateway, client_side_embedding: bool,
                                     my_embed: Callable[[Sequence[str]], list[list[float]]],
                                     caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    setup, program = quick_start_blocks()
    assert 'MemoryClient("http://127.0.0.1:8080"' in program
    key = live_gateway.key(tenant=f"quickstart-{client_side_embedding}")
    printed: list[tuple[object, ...]] = []
    scope: dict[str, object] = {"print": lambda *args: printed.append(args)}
    exec(setup, scope)  # noqa: S102 (the README's own code is what is under test)
    scope.update(KEY=key, my_embed=my_embed if client_side_embedding else None)
    exec(program.replace("http://127.0.0.1:8080", live_gateway.url), scope)  # noqa: S102

    assert 1 <= len(printed) <= 4  # the four memories of a fresh user, at most
    texts = [text for text, _ in printed]
    scores = [score for _, score in printed]
    # Meaning decides: both hardware events rank above the restaurant booking. With client
    # vectors the search is semantic and a hardware event comes first; a text query runs the
    # server's default mode (hybrid), where keyword matches ("user") also count.
    restaurant = texts.index("Booked a table for two at an Italian restaurant on Friday.")
    assert all(texts.index(h) < restaurant for h in HARDWARE), texts
    if client_side_embedding:
        assert texts[0] in HARDWARE, texts
    assert scores == sorted(scores, reverse=True)
    assert all(isinstance(s, float) and -1.0 <= s <= 1.0 for s in scores)
    client = scope["client"]
    stored = list(client.list(user_id="user_123"))  # type: ignore[attr-defined]
    assert [m["metadata"]["type"] for m in stored] == ["preference", "event", "event", "event"]
    assert {m["embedding_model"] for m in stored} == {"embedder:1"}
    assert caplog.records, "nothing was logged: the check would prove nothing"
    secret = key[17:]  # after "amk_<12 hex>_" (the secret itself may contain "_")
    assert key not in caplog.text and secret not in caplog.text
