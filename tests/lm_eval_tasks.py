"""Small lm-evaluation-harness tasks on local files, written into a folder for ``include_path``.

Three items the project wrote, three tasks over them: ``tiny_mc`` (multiple choice: acc,
acc_norm), ``tiny_ll`` (loglikelihood of the right answer: acc is ``is_greedy``) and
``tiny_gen`` (generate until a newline: exact_match). Nothing is downloaded: the harness reads
the JSONL through ``datasets``' json builder.
"""

from __future__ import annotations

import json
from pathlib import Path

ITEMS = [
    {"question": "What is the capital of France?", "choices": ["Paris", "Rome", "Berlin"],
     "answer": 0},
    {"question": "What is two plus two?", "choices": ["three", "four"], "answer": 1},
    {"question": "The quick brown fox jumps over the lazy", "choices": ["dog", "cat"],
     "answer": 0},
]  # fmt: skip

COMMON = """dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
doc_to_text: "Question: {{{{question}}}}\\nAnswer:"
"""
TASKS = {
    "tiny_mc": """output_type: multiple_choice
doc_to_choice: "{{choices}}"
doc_to_target: "{{answer}}"
metric_list:
  - {metric: acc, aggregation: mean, higher_is_better: true}
  - {metric: acc_norm, aggregation: mean, higher_is_better: true}
""",
    "tiny_ll": """output_type: loglikelihood
doc_to_target: " {{choices[answer]}}"
metric_list:
  - {metric: acc, aggregation: mean, higher_is_better: true}
""",
    "tiny_gen": """output_type: generate_until
doc_to_target: "{{choices[answer]}}"
generation_kwargs:
  until: ["\\n"]
  max_gen_toks: 8
metric_list:
  - {metric: exact_match, aggregation: mean, higher_is_better: true}
""",
}


def write_tasks(folder: Path) -> Path:
    """``folder`` holding ``items.jsonl`` and one YAML per task; returns ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / "items.jsonl"
    data.write_text("".join(json.dumps(item) + "\n" for item in ITEMS))
    for name, body in TASKS.items():
        text = f"task: {name}\n" + COMMON.format(data=data) + body
        (folder / f"{name}.yaml").write_text(text)
    return folder


def reference_loglikelihood(model_dir: Path, context: str, continuation: str) -> float:
    """log P(continuation | context) with transformers alone (no BOS, as the harness encodes)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    ctx = tok.encode(context, add_special_tokens=False)
    whole = tok.encode(context + continuation, add_special_tokens=False)
    with torch.no_grad():
        lps = torch.log_softmax(model(torch.tensor([whole])).logits[0].float(), -1)
    return float(sum(lps[i - 1, whole[i]] for i in range(len(ctx), len(whole))))
