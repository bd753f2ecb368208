"""A tiny Gemma-3-shaped causal LM and a byte-level BPE tokenizer, built in-process.

Random weights, seeded; a couple of hundred KB on disk. The tokenizer is trained on a few
sentences so ordinary English encodes to whole words, as a real tokenizer does.
"""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import Gemma3ForCausalLM, Gemma3TextConfig, PreTrainedTokenizerFast

CORPUS = [
    "The capital of France is Paris, and the weather today is lovely.",
    "Question: What is two plus two? Answer: four.",
    "Question: What is the capital of Italy? Answer: Rome.",
    "The quick brown fox jumps over the lazy dog.",
    "A tiny model for tests: it learns fast and forgets nothing.",
    "Numbers 0 1 2 3 4 5 6 7 8 9 10 11 12 and more numbers.",
    "user: hello there! model: hi, how can I help you today?",
] * 4
SPECIALS = ["<pad>", "<eos>", "<bos>", "<unk>"]


def build_tokenizer() -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=600,
        special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS, trainer)
    bos = tok.token_to_id("<bos>")
    tok.post_processor = processors.TemplateProcessing(
        single="<bos> $A", pair="<bos> $A <bos> $B", special_tokens=[("<bos>", bos)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
        unk_token="<unk>",
    )


def build_model(vocab_size: int, seed: int = 0, context: int = 256) -> Gemma3ForCausalLM:
    config = Gemma3TextConfig(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=32,
        max_position_embeddings=context,
        sliding_window=8,
        layer_types=["sliding_attention", "full_attention"],
        final_logit_softcapping=30.0,
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=2,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    model = Gemma3ForCausalLM(config)
    # Larger-than-default init so the random model has confident, varied predictions.
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(0, 0.08)
    return model.eval()


# A chat template for the tiny tokenizer: ``role: content`` lines, then ``model:`` to answer.
CHAT_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}model:{% endif %}"
)


def write_tiny_model(
    folder: Path, seed: int = 0, context: int = 256, chat_template: str | None = None
) -> Path:
    """The tiny model as a HF folder; a long ``context`` lets a test run a generation that would
    go on for minutes (to check that something stops it); ``chat_template`` is saved with the
    tokenizer (``CHAT_TEMPLATE``, or a test's own)."""
    tokenizer = build_tokenizer()
    if chat_template is not None:
        tokenizer.chat_template = chat_template
    model = build_model(len(tokenizer), seed, context)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
