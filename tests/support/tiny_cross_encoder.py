"""A tiny cross-encoder built and trained in-process, because no reranker weights are offline.

A 2-layer ``BertForSequenceClassification(num_labels=1)`` over a ~170-token slice of the
all-MiniLM WordPiece vocabulary, trained to tell "the passage is about the query's topic" from
"it is about another topic". Its two layers and embeddings start from all-MiniLM-L6-v2's first
two: from random weights the matching task plateaus for hundreds of steps and depends on the
seed; from MiniLM, 100 steps (~10 s on two idle cores) order every topic right. Saved with
``save_pretrained``, i.e. laid out like a hub cross-encoder (config.json, model.safetensors,
tokenizer files).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

TOPICS = (
    "hiking", "pizza", "chess", "guitar", "swimming", "coffee", "taxes", "gardening",
    "football", "sushi", "painting", "cycling", "opera", "yoga", "camping", "baking",
    "skiing", "poetry", "tennis", "wine",
)
QUERIES = (
    "what does the user think about {}?",
    "anything about {}",
    "{} preferences",
    "does the user like {}",
    "notes on {}",
)
PASSAGES = (
    "the user loves {}",
    "I really enjoy {} on weekends",
    "my sister got me into {} last year",
    "{} is what we talk about most",
    "she hates {} and avoids it",
    "remember that {} matters to him",
)
MAX_LENGTH = 128  # small on purpose: the exporter's validation pairs then exercise truncation
LAYERS = 2


def query(topic: str, template: int = 0) -> str:
    return QUERIES[template % len(QUERIES)].format(topic)


def passage(topic: str, template: int = 0) -> str:
    return PASSAGES[template % len(PASSAGES)].format(topic)


def _batch(rng: random.Random, queries: int) -> tuple[list[str], list[str], list[float]]:
    """Each query twice: with a passage on its topic (1) and the same template on another (0).

    Contrasting the two passages of one query gives a much cleaner signal than independent
    random pairs, which is what makes a few dozen steps enough.
    """
    qs, ps, labels = [], [], []
    for _ in range(queries):
        topic = rng.choice(TOPICS)
        other = rng.choice([t for t in TOPICS if t != topic])
        text = query(topic, rng.randrange(len(QUERIES)))
        template = rng.randrange(len(PASSAGES))
        qs += [text, text]
        ps += [passage(topic, template), passage(other, template)]
        labels += [1.0, 0.0]
    return qs, ps, labels


def _small_tokenizer(target: Path, source: Any) -> Any:
    """A WordPiece tokenizer over the slice of the all-MiniLM vocabulary this corpus needs.

    Special tokens, every token of the training texts, and single characters (also as ``##``
    continuations), so any other text still tokenises (to characters or [UNK]).
    """
    from transformers import BertTokenizerFast

    corpus = [q.format(t) for q in QUERIES for t in TOPICS]
    corpus += [p.format(t) for p in PASSAGES for t in TOPICS]
    words = {token for text in corpus for token in source.tokenize(text)}
    full = source.get_vocab()
    chars = {c for c in "abcdefghijklmnopqrstuvwxyz0123456789.,;:!?'\"()-_/&#@%+*=" if c in full}
    chars |= {f"##{c}" for c in chars if f"##{c}" in full}
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab = specials + sorted((words | chars) - set(specials))
    target.mkdir(parents=True, exist_ok=True)
    vocab_file = target / "vocab.txt"
    vocab_file.write_text("\n".join(vocab) + "\n")
    return BertTokenizerFast(
        vocab_file=str(vocab_file), do_lower_case=True, model_max_length=MAX_LENGTH
    )


def _minilm_weights(minilm: Path, rows: list[int]) -> dict[str, Any]:
    """all-MiniLM's embeddings (vocabulary rows ``rows``) and first LAYERS layers."""
    from safetensors.torch import load_file

    weights = {}
    for name, tensor in load_file(str(minilm / "model.safetensors")).items():
        if ".layer." in name and int(name.split(".layer.")[1].split(".")[0]) >= LAYERS:
            continue
        if name.endswith("position_ids"):
            continue
        if "word_embeddings" in name:
            tensor = tensor[rows]
        elif "position_embeddings" in name:
            tensor = tensor[:MAX_LENGTH]
        weights[f"bert.{name}"] = tensor
    return weights


def build(target: Path, *, steps: int = 100, seed: int = 0) -> Path:
    """Create, train and save the model into ``target``; returns ``target``."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from export.cli import default_source

    torch.manual_seed(seed)
    rng = random.Random(seed)
    minilm = default_source()
    source = AutoTokenizer.from_pretrained(str(minilm), local_files_only=True)
    tokenizer = _small_tokenizer(target, source)
    full = source.get_vocab()
    rows = [full[token] for token, _ in sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1])]
    config = BertConfig(
        vocab_size=len(rows), hidden_size=384, num_hidden_layers=LAYERS, num_attention_heads=12,
        intermediate_size=1536, max_position_embeddings=MAX_LENGTH, num_labels=1,
    )
    model = BertForSequenceClassification(config)
    model.load_state_dict(_minilm_weights(minilm, rows), strict=False)  # the head stays random
    optimiser = torch.optim.AdamW(model.parameters(), lr=5e-4)
    # Warm-up, then linear decay: without the decay the last steps still jump around and
    # the odd topic pair comes out misordered, depending on the seed.
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda step: min(1.0, (step + 1) / 10) * max(0.0, 1 - step / steps)
    )
    loss_fn = torch.nn.BCEWithLogitsLoss()
    model.train()
    for _ in range(steps):
        queries, passages, labels = _batch(rng, 16)
        encoded = tokenizer(queries, passages, padding=True, truncation=True, return_tensors="pt")
        loss = loss_fn(model(**encoded).logits.squeeze(-1), torch.tensor(labels))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
    model.eval()
    model.save_pretrained(str(target))
    tokenizer.save_pretrained(str(target))
    return target
