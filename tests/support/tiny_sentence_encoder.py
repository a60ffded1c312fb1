"""A tiny sentence-transformers model with the architecture of all-mpnet-base-v2, built here.

The real all-mpnet-base-v2 is 440 MB; what ``export embedder --source`` has to get right about
it is the architecture, not the size: an MPNet encoder (its graph takes ``input_ids`` and
``attention_mask`` only, no ``token_type_ids``), mean pooling and normalisation, saved as a
sentence-transformers folder (modules.json, sentence_bert_config.json, tokenizer.json). Two
layers of width 32 with random weights (seeded) and all-MiniLM's WordPiece tokenizer: the
exporter's parity check compares the graph against this very model, so trained weights add
nothing.
"""

from __future__ import annotations

from pathlib import Path

DIMENSION = 32
MAX_SEQ_LENGTH = 64


def build(target: Path) -> Path:
    """Write the model folder under ``target`` and return it."""
    import torch
    from sentence_transformers import SentenceTransformer, models
    from transformers import BertTokenizerFast, MPNetConfig, MPNetModel

    from export.cli import default_source

    tokenizer = BertTokenizerFast.from_pretrained(str(default_source()))
    torch.manual_seed(0)
    config = MPNetConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=DIMENSION, num_hidden_layers=2,
        num_attention_heads=2, intermediate_size=64, max_position_embeddings=MAX_SEQ_LENGTH + 2,
        pad_token_id=tokenizer.pad_token_id,
    )
    encoder_dir = target / "encoder"
    MPNetModel(config).save_pretrained(str(encoder_dir))
    tokenizer.save_pretrained(str(encoder_dir))
    word = models.Transformer(str(encoder_dir), max_seq_length=MAX_SEQ_LENGTH)
    model = SentenceTransformer(
        modules=[word, models.Pooling(DIMENSION, "mean"), models.Normalize()], device="cpu"
    )
    folder = target / "tiny-mpnet"
    model.save(str(folder))
    return folder
