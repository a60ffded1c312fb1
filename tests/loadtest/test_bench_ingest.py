"""bench_ingest's payloads: the same texts as ``text`` items or as conversations."""

from __future__ import annotations

from loadtest.bench.ingest import CONVERSATION_TURNS, as_items


def test_the_same_texts_as_text_items_or_as_conversations() -> None:
    texts = [f"sentence {i}" for i in range(CONVERSATION_TURNS * 2 + 3)]
    items = as_items(texts, "u1", "texts")
    assert [i["text"] for i in items] == texts and all(i["user_id"] == "u1" for i in items)
    conversations = as_items(texts, "u1", "messages")
    assert [len(c["messages"]) for c in conversations] == [CONVERSATION_TURNS,
                                                           CONVERSATION_TURNS, 3]
    said = [m["content"] for c in conversations for m in c["messages"]]
    assert said == texts
    names = {m["name"] for c in conversations for m in c["messages"]}
    assert len(names) == 2  # two speakers take turns
