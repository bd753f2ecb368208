"""Train and sample Gemma 3 270M through the local backend, with Tinker's client API.

    python examples/quickstart.py            # embedded Gemma 3 270M, CPU or GPU
    python examples/quickstart.py --steps 5  # fewer steps

The same code runs on Tinker by swapping the ServiceClient for ``tinker.ServiceClient()``.
"""

from __future__ import annotations

import argparse
import time

from tinker import types

from evaltune.backends.local import ServiceClient

QA = [
    ("What is the capital of Australia?", "Canberra"),
    ("What is the chemical symbol for gold?", "Au"),
    ("How many legs does a spider have?", "Eight"),
    ("What is the largest planet in the solar system?", "Jupiter"),
    ("Who wrote 'Pride and Prejudice'?", "Jane Austen"),
    ("What is the boiling point of water in Celsius?", "100"),
    ("What is the square root of 81?", "9"),
    ("Which ocean is the largest?", "The Pacific"),
]


def make_datum(tokenizer, question: str, answer: str) -> types.Datum:
    prompt = tokenizer.encode(f"Question: {question}\nAnswer:")  # starts with <bos>
    completion = tokenizer.encode(f" {answer}\n", add_special_tokens=False)
    tokens = prompt + completion
    weights = [0.0] * len(prompt) + [1.0] * len(completion)
    return types.Datum(  # position i predicts token i + 1
        model_input=types.ModelInput.from_ints(tokens[:-1]),
        loss_fn_inputs={"target_tokens": tokens[1:], "weights": weights[1:]},
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="gemma-3-270m")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--lr", type=float, default=5e-4)
    args = parser.parse_args()

    service = ServiceClient(progress=print)
    training = service.create_lora_training_client(base_model=args.model, rank=16, seed=0).result()
    tokenizer = training.get_tokenizer()
    data = [make_datum(tokenizer, q, a) for q, a in QA]
    n_tokens = sum(float(d.loss_fn_inputs["weights"].to_numpy().sum()) for d in data)

    for step in range(args.steps):
        start = time.perf_counter()
        fwd_bwd = training.forward_backward(data, "cross_entropy")  # queue both, then wait
        optim = training.optim_step(types.AdamParams(learning_rate=args.lr))
        loss = fwd_bwd.result().metrics["loss:sum"] / n_tokens
        optim.result()
        print(
            f"step {step + 1}/{args.steps}  loss/token {loss:.3f}  "
            f"({time.perf_counter() - start:.1f}s)"
        )

    sampler = training.save_weights_and_get_sampling_client().result()
    prompt = types.ModelInput.from_ints(
        tokenizer.encode("Question: How many legs does a spider have?\nAnswer:")
    )
    params = types.SamplingParams(max_tokens=12, temperature=0.0, stop=["\n"])
    result = sampler.sample(prompt, num_samples=1, sampling_params=params).result()
    print("sample:", repr(tokenizer.decode(result.sequences[0].tokens)))


if __name__ == "__main__":
    main()
