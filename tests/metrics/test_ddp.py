"""Under DDP (2 CPU processes, gloo, uneven shards) the metrics give exactly the single-process numbers."""

from __future__ import annotations

import random

import torch

from rsvlm_zoo.metrics import BLEU, CaptionMetrics, CIDEr, SemanticIoU
from rsvlm_zoo.metrics.suite import tokenize_corpus
from tests.metrics.gloo import gloo_group, rank_results, save_rank_results, start_ranks

SPLIT = 23  # rank 0 holds samples [0, 23), rank 1 the other 57: uneven shards


def _corpus(n: int = 80) -> tuple[list[str], list[list[str]]]:
    rng = random.Random(7)
    vocab = "a an the plane planes runway green trees building buildings road river bridge many two , .".split()

    def sentence(lo: int, hi: int) -> str:
        return " ".join(rng.choices(vocab, k=rng.randint(lo, hi))).capitalize()

    refs = [[sentence(3, 12) for _ in range(rng.randint(1, 5))] for _ in range(n)]
    return [sentence(0, 14) for _ in range(n)], refs


def _metrics(meteor: bool = True) -> dict[str, torch.nn.Module]:
    return {
        "suite": CaptionMetrics(meteor=meteor),
        "bleu": BLEU(n=4, tokenizer="none"),
        "cider": CIDEr(tokenizer="none"),
        "siou": SemanticIoU(),
    }


def _results(metrics: dict) -> dict[str, float]:
    out = {}
    for name, metric in metrics.items():
        value = metric.compute()
        if isinstance(value, dict):
            out.update({f"{name}/{k}": float(v) for k, v in value.items()})
        else:
            out[name] = float(value)
    return out


def _worker(rank: int, port: int, out_dir: str) -> None:
    with gloo_group(rank, port):
        preds, refs = _corpus()
        lo, hi = (0, SPLIT) if rank == 0 else (SPLIT, len(preds))
        metrics = _metrics()
        for start in range(lo, hi, 10):  # several batches per rank
            stop = min(start + 10, hi)
            for metric in metrics.values():
                metric.update(preds[start:stop], refs[start:stop])
        results = _results(metrics)
        results["local_preds_after_compute"] = len(metrics["suite"].preds)
        results["meteor_jvm_started"] = metrics["suite"]._meteor.running
        if rank == 0:  # single-process METEOR of the whole corpus, with the same JVM
            hyps, refs_tok = tokenize_corpus(preds, refs, "ptb")
            results["single_process_meteor"] = metrics["suite"]._meteor.corpus_score(hyps, refs_tok)
        metrics["suite"].close()
        save_rank_results(out_dir, rank, results)


def test_two_gloo_processes_with_uneven_shards_match_single_process(tmp_path):
    context = start_ranks(_worker, tmp_path)
    preds, refs = _corpus()  # the single-process numbers, computed while the workers run
    metrics = _metrics(meteor=False)
    for metric in metrics.values():
        metric.update(preds, refs)
    expected = _results(metrics)
    rank0, rank1 = rank_results(context, tmp_path)
    expected["suite/METEOR"] = rank0["single_process_meteor"]
    for key, value in expected.items():
        assert rank0[key] == value, (key, rank0[key], value)
        assert rank1[key] == value, (key, rank1[key], value)
    # states are back to the local shard after compute; only rank 0 ran the METEOR JVM
    assert (rank0["local_preds_after_compute"], rank1["local_preds_after_compute"]) == (
        SPLIT,
        len(preds) - SPLIT,
    )
    assert rank0["meteor_jvm_started"] and not rank1["meteor_jvm_started"]
