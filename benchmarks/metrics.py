"""Caption-metric suite speed: rsvlm_zoo's CaptionMetrics against pycocoevalcap's own scorers, same inputs.

Builds 5,000 prediction/reference sets from the RSICD test references (each caption of an image in turn is the
prediction, the image's other captions its references), scores them once with pycocoevalcap's path
(PTBTokenizer, then Bleu(4), Meteor, Rouge, Cider, as COCOEvalCap runs them) and once with
`rsvlm_zoo.metrics.CaptionMetrics` (construction, update and compute, JVM start-up included), then prints both
times, the ratio and the largest score difference.

Run from the project root: `python benchmarks/metrics.py [--sets 5000] [--references PATH]`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DEFAULT_REFS = ROOT / ".." / "shared" / "data" / "metrics" / "rsicd_test_references_coco.json"


def build_sets(path: Path, n: int) -> tuple[list[str], list[list[str]]]:
    data = json.loads(path.read_text(encoding="utf-8"))
    caps: dict[int, list[str]] = defaultdict(list)
    for ann in data["annotations"]:
        caps[ann["image_id"]].append(ann["caption"])
    groups = [v for v in caps.values() if len(v) > 1]
    preds, refs = [], []
    for turn in range(max(len(v) for v in groups)):
        for v in groups:
            if turn < len(v):
                preds.append(v[turn])
                refs.append(v[:turn] + v[turn + 1 :])
    reps = -(-n // len(preds))
    return (preds * reps)[:n], (refs * reps)[:n]


def warm_page_cache() -> None:
    """Read the jars and METEOR's paraphrase table once so neither path pays the first disk read."""
    from rsvlm_zoo.metrics.java import pycocoevalcap_dir

    for f in pycocoevalcap_dir().rglob("*"):
        if f.suffix in {".jar", ".gz"}:
            f.read_bytes()


def run_pycocoevalcap(preds: list[str], refs: list[list[str]]) -> tuple[dict[str, float], dict[str, float]]:
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.meteor.meteor import Meteor
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    times, scores = {}, {}
    t = time.perf_counter()
    tokenizer = PTBTokenizer()
    gts = tokenizer.tokenize({i: [{"caption": c} for c in r] for i, r in enumerate(refs)})
    res = tokenizer.tokenize({i: [{"caption": p}] for i, p in enumerate(preds)})
    times["PTB tokenizer"] = time.perf_counter() - t
    t = time.perf_counter()
    for k, v in enumerate(Bleu(4).compute_score(gts, res, verbose=0)[0], start=1):
        scores[f"Bleu_{k}"] = float(v)
    times["BLEU"] = time.perf_counter() - t
    t = time.perf_counter()
    meteor = Meteor()
    scores["METEOR"] = float(meteor.compute_score(gts, res)[0])
    del meteor
    times["METEOR"] = time.perf_counter() - t
    t = time.perf_counter()
    scores["ROUGE_L"] = float(Rouge().compute_score(gts, res)[0])
    times["ROUGE-L"] = time.perf_counter() - t
    t = time.perf_counter()
    scores["CIDEr"] = float(Cider().compute_score(gts, res)[0])
    times["CIDEr"] = time.perf_counter() - t
    return scores, times


def ensure_paraphrase_index() -> str:
    """Build METEOR's paraphrase index into the cache if absent (once per machine), then forget it in this process.

    The cold run below then pays for reading the index from the cache, as any new process does.
    """
    from rsvlm_zoo.metrics import paraphrase

    t = time.perf_counter()
    folder_existed = any(paraphrase.cache_root().glob("meteor-paraphrase-*/len2.npy"))
    paraphrase.ParaphraseIndex.cached()
    seconds = time.perf_counter() - t
    paraphrase._INDEX = None
    state = "found in the cache" if folder_existed else "built (once per machine)"
    return f"METEOR paraphrase index {state}: {seconds:.2f} s, not part of the timings below"


def run_ours(preds: list[str], refs: list[list[str]]) -> tuple[dict[str, float], float, dict[str, float], float]:
    """A cold evaluation (metric built, JVM started), then a second one with the same metric after `reset()`.

    The second is what every validation after the first costs during training: the metric keeps its METEOR
    JVM between epochs, while pycocoevalcap's `COCOEvalCap.evaluate` starts a new one each time.
    """
    from rsvlm_zoo.metrics import CaptionMetrics

    t = time.perf_counter()
    with CaptionMetrics() as metric:
        metric.update(preds, refs)
        scores = {k: float(v) for k, v in metric.compute().items()}
        cold = time.perf_counter() - t
        metric.reset()
        t = time.perf_counter()
        metric.update(preds, refs)
        again = {k: float(v) for k, v in metric.compute().items()}
        warm = time.perf_counter() - t
    return scores, cold, again, warm


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", type=int, default=5000)
    parser.add_argument("--references", type=Path, default=DEFAULT_REFS)
    args = parser.parse_args()
    if not args.references.is_file():
        print(f"references {args.references} not found", file=sys.stderr)
        return 1
    preds, refs = build_sets(args.references, args.sets)
    warm_page_cache()
    import rsvlm_zoo.metrics  # noqa: F401 - import torch & co before timing

    print(
        f"{len(preds)} prediction/reference sets, {sum(map(len, refs))} references; "
        f"{os.cpu_count()} CPUs, load average before: {os.getloadavg()[0]:.2f}"
    )
    print(ensure_paraphrase_index())
    ref_scores, ref_times = run_pycocoevalcap(preds, refs)
    our_scores, our_time, warm_scores, warm_time = run_ours(preds, refs)
    ref_total = sum(ref_times.values())

    print(f"\n{'pycocoevalcap step':<22}{'seconds':>9}")
    for name, seconds in ref_times.items():
        print(f"{name:<22}{seconds:>9.2f}")
    print(f"\n{'metric':<10}{'pycocoevalcap':>20}{'rsvlm_zoo':>20}{'|difference|':>14}")
    diffs = {}
    for key, value in ref_scores.items():
        diffs[key] = abs(our_scores[key] - value)
        print(f"{key:<10}{value:>20.15f}{our_scores[key]:>20.15f}{diffs[key]:>14.2e}")
    print(f"\n{'path':<40}{'seconds':>9}")
    print(f"{'pycocoevalcap (tokenizer + 4 scorers)':<40}{ref_total:>9.2f}")
    print(f"{'rsvlm_zoo CaptionMetrics (one pass)':<40}{our_time:>9.2f}")
    print(f"{'speed-up':<40}{ref_total / our_time:>8.2f}x")
    print(f"{'rsvlm_zoo, next evaluation (warm JVM)':<40}{warm_time:>9.2f}")
    print(f"{'speed-up per later evaluation':<40}{ref_total / warm_time:>8.2f}x")
    print(f"next evaluation gives the same scores: {warm_scores == our_scores}")
    print(
        f"max |difference| BLEU/ROUGE-L/CIDEr: {max(v for k, v in diffs.items() if k != 'METEOR'):.2e}; "
        f"METEOR equal: {our_scores['METEOR'] == ref_scores['METEOR']}"
    )
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
