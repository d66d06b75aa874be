"""pycocoevalcap's own path (PTBTokenizer, Bleu, Meteor, Rouge, Cider): what the metrics must match."""

from __future__ import annotations

from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.meteor.meteor import Meteor
from pycocoevalcap.rouge.rouge import Rouge
from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer


def pyco_tokenize(preds: list[str], refs: list[list[str]]) -> tuple[dict, dict]:
    """Tokenised (gts, res) dicts keyed by sample index, as COCOEvalCap builds them."""
    tokenizer = PTBTokenizer()
    gts = tokenizer.tokenize({i: [{"caption": c} for c in r] for i, r in enumerate(refs)})
    res = tokenizer.tokenize({i: [{"caption": p}] for i, p in enumerate(preds)})
    return gts, res


class PycoSuite:
    """The coco-caption scorers with one Meteor JVM reused across calls; `close()` stops it."""

    def __init__(self, meteor: bool = True) -> None:
        self.meteor = Meteor() if meteor else None

    def score_tokenized(self, gts: dict, res: dict) -> dict[str, float]:
        out = {}
        bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
        for k, value in enumerate(bleu, start=1):
            out[f"Bleu_{k}"] = float(value)
        if self.meteor is not None:
            out["METEOR"] = float(self.meteor.compute_score(gts, res)[0])
        out["ROUGE_L"] = float(Rouge().compute_score(gts, res)[0])
        out["CIDEr"] = float(Cider().compute_score(gts, res)[0])
        return out

    def score(self, preds: list[str], refs: list[list[str]]) -> dict[str, float]:
        return self.score_tokenized(*pyco_tokenize(preds, refs))

    def close(self) -> None:
        if self.meteor is not None:
            proc = self.meteor.meteor_p
            proc.stdin.close()
            proc.kill()
            proc.wait()
            for stream in (proc.stdout, proc.stderr):
                stream.close()
            self.meteor = None


def assert_matches(ours: dict, ref: dict, tol: float = 1e-9) -> None:
    """BLEU, ROUGE-L, CIDEr within `tol`; METEOR exactly equal."""
    assert set(ref) <= set(ours), (sorted(ours), sorted(ref))
    for key, value in ref.items():
        got = float(ours[key])
        if key == "METEOR":
            assert got == value, (key, got, value)
        else:
            assert abs(got - value) <= tol, (key, got, value)
