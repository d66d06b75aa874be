"""Where a training step's time goes: the LLM against everything around it (data, encoder, extractor, splice).

    python benchmarks/train_step.py [--batch 8] [--steps 9] [--threads 2]

For each configuration it times, on the same batch of generated scenes:
- collate: turning samples into a batch (image resize and normalisation, masks, tokenisation, padding);
- step: forward + backward + optimiser step of the whole model, as `training_step` runs it;
- LLM: forward + backward of the LLM alone on the step's spliced embeddings (detached), and the AdamW update
  of the LLM's own parameters (the update of the other trained blocks stays outside);
- encoder: the vision encoder's forward alone (frozen, as in every full-size stage).
The parts are timed in turn within each round; "outside the LLM" = (collate + step - LLM) / (collate + step)
is computed within each round and its median over the rounds printed, with its quartiles (the machine's
speed drifts between rounds far more than within one). Prints one row per configuration and setting:
fp32; fp32 with the frozen encoder kept in bfloat16 (`encoder_dtype: bfloat16`), also with `compile_encoder`;
and bf16-true (the whole model in bfloat16, as the full-size recipes train it), also with `compile_encoder`.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

from rsvlm_zoo import build_model
from rsvlm_zoo.data.collate import RegionCollator
from rsvlm_zoo.data.processor import RegionProcessor
from rsvlm_zoo.data.synthetic import SyntheticRegionScenes

MID_LLM = {
    "model_type": "llama",
    "hidden_size": 512,
    "intermediate_size": 1376,
    "num_hidden_layers": 4,
    "num_attention_heads": 8,
    "num_key_value_heads": 8,
    "max_position_embeddings": 2048,
}
CONFIGS: dict[str, dict[str, Any]] = {
    "tiny (frozen ImageNet Lite0 128 px + 2x128 Llama)": {},
    "mid (convnext_tiny 256 px + 4x512 Llama)": {
        "encoder": {"model_name": "convnext_tiny", "input_size": (256, 256), "pretrained": False},
        "extractor": {"hidden_dim": 512, "pos_size": 56, "pos_hidden": 512},
        "llm": {"config": MID_LLM},
    },
}


def interleaved_times(fns: list[Callable[[], Any]], repeats: int) -> list[list[float]]:
    """Times of each function per round, the functions run in turn within every round (after a warm-up round).

    Timing the parts round-robin, rather than each part's repeats back to back, exposes the parts of one round
    to the same speed of the machine, so a share computed within a round is far steadier than one computed from
    separately timed parts.
    """
    for fn in fns:
        fn()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, out in zip(fns, times, strict=True):
            t0 = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t0)
    return times


PRECISIONS: dict[str, tuple[torch.dtype, dict[str, Any]]] = {
    "fp32": (torch.float32, {}),
    "fp32, encoder bf16": (torch.float32, {"encoder_dtype": "bfloat16"}),
    "fp32, encoder bf16 + compiled": (torch.float32, {"encoder_dtype": "bfloat16", "compile_encoder": True}),
    "bf16-true": (torch.bfloat16, {}),
    "bf16-true, encoder compiled": (torch.bfloat16, {"compile_encoder": True}),
}


def measure(
    overrides: dict[str, Any], batch_size: int, repeats: int, dtype: torch.dtype = torch.float32
) -> tuple[list[float], list[float]]:
    """Median collate/step/LLM/encoder times (s) and the per-round shares of the step outside the LLM."""
    torch.manual_seed(0)
    model = build_model("aquila_plus_tiny", stage=3, **overrides).to(dtype)
    model.train()
    scenes = SyntheticRegionScenes(batch_size, seed=0, side=model.encoder.input_size[0])
    samples = [scenes[i] for i in range(batch_size)]
    processor = RegionProcessor(model.input_spec(), max_length=2048)
    collator = RegionCollator(model.llm.tokenizer.pad_token_id)
    batch = collator([processor(s, s.image) for s in samples])
    optimiser = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)

    def collate() -> None:
        collator([processor(s, s.image) for s in samples])

    def step() -> None:
        loss = model(batch)
        loss.backward()
        optimiser.step()
        optimiser.zero_grad(set_to_none=True)

    embeds = model.inputs_embeds(batch).detach()
    llm_optimiser = torch.optim.AdamW([p for p in model.llm.parameters() if p.requires_grad], lr=1e-5)

    def llm_only() -> None:
        e = embeds.clone().requires_grad_(True)
        model.llm.supervised_loss(e, batch["attention_mask"], batch["labels"]).backward()
        llm_optimiser.step()
        model.zero_grad(set_to_none=True)

    def encoder_only() -> None:
        model.encode(batch["pixel_values"].to(dtype))  # encode() casts to the encoder's own dtype

    rounds = interleaved_times([collate, step, llm_only, encoder_only], repeats)
    shares = [(c + s - m) / (c + s) for c, s, m in zip(rounds[0], rounds[1], rounds[2], strict=True)]
    return [statistics.median(t) for t in rounds], shares


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=9, help="timed rounds (medians over the rounds are kept)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"batch {args.batch}, median of {args.steps} interleaved rounds, {args.threads} CPU threads")
    print("outside LLM: median over rounds of each round's share, [lower, upper quartile]")
    head = f"{'collate ms':>11}{'step ms':>10}{'LLM ms':>9}{'encoder ms':>11}{'outside LLM':>13}{'quartiles':>16}"
    print(f"{'configuration':<72}{head}")
    for name, overrides in CONFIGS.items():
        for precision, (dtype, extra) in PRECISIONS.items():
            times, shares = measure({**overrides, **extra}, args.batch, args.steps, dtype)
            row = "".join(f"{t * 1e3:>{w}.1f}" for t, w in zip(times, (11, 10, 9, 11), strict=True))
            low, _, high = statistics.quantiles(shares, n=4)
            label = f"{name}, {precision}"
            print(f"{label:<72}{row}{statistics.median(shares):>12.1%}   [{low:.1%}, {high:.1%}]")


if __name__ == "__main__":
    main()
