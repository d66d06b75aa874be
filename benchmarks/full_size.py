"""Full-width QLoRA memory: Aquila-plus-7B and MGIMM-7B at Vicuna widths, measured shallow, projected to 32 layers.

    python benchmarks/full_size.py [--tokens 2048] [--layers 2 4] [--family aquila_plus mgimm] [--gpu]

Each configuration runs in a fresh subprocess: the full-size encoder (random weights written in timm's hub layout
and loaded through the encoder's real path, kept in bfloat16), the extractor and projector in float32, the LLM at
Vicuna-7B widths (4096 hidden, 11008 MLP, 32 heads, 32,000 words) with `--layers` layers in 4-bit NF4 + LoRA
(r 16) + non-reentrant gradient checkpointing, trained under bfloat16 autocast with float32 master weights (the
full-size recipes' `bf16-mixed`). It prints the memory after building each part and the peak of one training step
(forward, backward, AdamW) on a sequence of `--tokens` tokens.

On the CPU, memory is the process's resident set (peak via /proc/self/status VmHWM, reset before the step); on a
GPU (`--gpu`) it is `torch.cuda.max_memory_allocated`, and tokens/s of the step are printed too. Values of random
weights do not change memory or speed. The 32-layer figure is a projection: peak(32) = peak(L1) + (32 - L1) *
(peak(L2) - peak(L1)) / (L2 - L1), printed with its arithmetic.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

ENCODERS = {
    "aquila_plus": "convnext_large_mlp.clip_laion2b_ft_soup_320",
    "mgimm": "vit_large_patch14_clip_336.openai",
}
LORA = {"r": 16, "alpha": 256, "dropout": 0.05}


def vicuna_widths(layers: int) -> dict[str, Any]:
    """Vicuna-7B's architecture with `layers` decoder layers."""
    from rsvlm_zoo.weights.pretrained import PRETRAINED_CFGS

    return {**PRETRAINED_CFGS["lmsys/vicuna-7b-v1.5"].config, "num_hidden_layers": layers}


def write_encoder_weights(family: str, folder: Path) -> Path:
    """Random full-size encoder weights in timm's hub layout (`model.safetensors`), written by timm itself."""
    import timm
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "model.safetensors"
    if not path.is_file():
        model = timm.create_model(ENCODERS[family], pretrained=False)
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
        del model
    return path


def build_full_width(family: str, layers: int, weights: Path, gpu: bool = False) -> torch.nn.Module:
    """`<family>_7b` at full width with a `layers`-layer LLM: 4-bit NF4 + LoRA + non-reentrant checkpointing."""
    from rsvlm_zoo import build_model

    llm = {
        "name_or_path": None,
        "config": vicuna_widths(layers),
        "tokenizer": "builtin",
        "torch_dtype": "bfloat16",
        "load_in_4bit": True,
        "compute_dtype": "bfloat16",
        "gradient_checkpointing": True,
    }
    model = build_model(
        f"{family}_7b",
        encoder={"weights": str(weights)},
        llm=llm,
        lora=LORA,
        encoder_dtype="bfloat16",
        warmup_ratio=0.0,
    )
    return model.cuda() if gpu else model


def full_width_batch(model: torch.nn.Module, tokens: int) -> dict[str, Any]:
    """One training sample (its first exchange) whose answer is lengthened to about `tokens` tokens in all."""
    from rsvlm_zoo.data.collate import RegionCollator
    from rsvlm_zoo.data.processor import RegionProcessor
    from rsvlm_zoo.data.synthetic import SyntheticRegionScenes

    task = "description" if model.project_regions else "region_qa"
    sample = SyntheticRegionScenes(1, seed=0, side=model.encoder.input_size[0], task=task)[0]
    sample.conversation = sample.conversation[:2]
    if sample.region_refs is not None:
        sample.region_refs = sample.region_refs[: sample.conversation[0].text.count("<mask>")]
    proc = RegionProcessor(model.input_spec(), max_length=1 << 30)
    base = len(proc.tokenize(sample, len(sample.regions))[0])
    words = "a large white ship is moored near the harbour".split()
    filler = [words[i % len(words)] for i in range(max(0, tokens - base))]
    sample.conversation[1].text = " ".join([sample.conversation[1].text, *filler])
    item = proc(sample, sample.image)
    return RegionCollator(model.llm.tokenizer.pad_token_id)([item])


def train_one_step(model: torch.nn.Module, batch: dict[str, Any], lr: float = 1e-5) -> float:
    """Forward, backward and AdamW under bfloat16 autocast with float32 master weights (`bf16-mixed`)."""
    device = next(p for p in model.parameters() if p.requires_grad).device
    batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr)
    model.train()
    with torch.autocast(device.type, dtype=torch.bfloat16):
        loss = model(batch)
    loss.backward()
    optimizer.step()
    return float(loss)


def _rss() -> tuple[float, float]:
    """(current, peak) resident memory of this process in GiB (Linux /proc)."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 2**20, int(fields["VmHWM"].split()[0]) / 2**20


def _reset_peak() -> None:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current resident set
    except OSError:
        pass


def measure(family: str, layers: int, tokens: int, weights: Path, gpu: bool) -> dict[str, Any]:
    """Memory after building each part and the peak of one training step (this process)."""
    torch.manual_seed(0)
    out: dict[str, Any] = {"family": family, "layers": layers, "tokens": tokens}
    memory = (lambda: torch.cuda.memory_allocated() / 2**30) if gpu else (lambda: _rss()[0])
    base = memory()
    model = build_full_width(family, layers, weights, gpu)
    out["built_gib"] = memory() - base
    for part in ("encoder", "extractor", "projector", "llm"):
        block = getattr(model, part)
        out[f"{part}_gib"] = sum(t.numel() * t.element_size() for t in [*block.parameters(), *block.buffers()]) / 2**30
    batch = full_width_batch(model, tokens)
    out["sequence"] = int(batch["input_ids"].shape[1])
    if gpu:
        torch.cuda.reset_peak_memory_stats()
        torch.cuda.synchronize()
    else:
        _reset_peak()
    start = time.perf_counter()
    out["loss"] = train_one_step(model, batch)
    if gpu:
        torch.cuda.synchronize()
        out["peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
        out["device"] = torch.cuda.get_device_name()
    else:
        out["peak_gib"] = _rss()[1] - base
        out["device"] = "CPU"
    out["step_s"] = time.perf_counter() - start
    out["tokens_per_s"] = out["sequence"] / out["step_s"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=2048)
    parser.add_argument("--layers", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--family", nargs="+", default=["aquila_plus", "mgimm"], choices=sorted(ENCODERS))
    parser.add_argument("--gpu", action="store_true", help="measure on the GPU (CUDA memory, tokens/s)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        family, layers, weights = json.loads(args.child)
        print(json.dumps(measure(family, layers, args.tokens, Path(weights), args.gpu)))
        return
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for family in args.family:
            weights = write_encoder_weights(family, Path(tmp) / family)
            for layers in args.layers:
                child = [sys.executable, __file__, "--tokens", str(args.tokens), "--child"]
                child.append(json.dumps([family, layers, str(weights)]))
                done = subprocess.run(child + (["--gpu"] if args.gpu else []), capture_output=True, text=True)
                if done.returncode:
                    sys.exit(f"{family} {layers} layers failed:\n{done.stderr[-3000:]}")
                rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
                print(json.dumps(rows[-1]), flush=True)
    header = ("model", "layers", "seq", "encoder", "extr+proj", "LLM", "peak", "tok/s")
    print("\n{:<12} {:>6} {:>5} {:>8} {:>9} {:>6} {:>7} {:>7}".format(*header))
    for r in rows:
        extra = r["extractor_gib"] + r["projector_gib"]
        print(
            f"{r['family']:<12} {r['layers']:>6} {r['sequence']:>5} {r['encoder_gib']:>7.2f}G {extra:>8.2f}G "
            f"{r['llm_gib']:>5.2f}G {r['peak_gib']:>6.2f}G {r['tokens_per_s']:>7.1f}  ({r['device']})"
        )
    for family in args.family:
        mine = sorted((r for r in rows if r["family"] == family), key=lambda r: r["layers"])
        if len(mine) >= 2:
            a, b = mine[0], mine[-1]
            per_layer = (b["peak_gib"] - a["peak_gib"]) / (b["layers"] - a["layers"])
            projected = a["peak_gib"] + (32 - a["layers"]) * per_layer
            print(
                f"projection {family}-7B, 32 layers, {a['sequence']} tokens: {a['peak_gib']:.2f} + (32 - {a['layers']})"
                f" x ({b['peak_gib']:.2f} - {a['peak_gib']:.2f}) / ({b['layers']} - {a['layers']}) = "
                f"{projected:.2f} GiB ({projected * 2**30 / 1e9:.1f} GB) [a projection, not a measurement]"
            )


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    np.set_printoptions(precision=3)
    main()
