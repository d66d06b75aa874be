"""MixedSource: several sources drawn in set proportions, deterministically per seed."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from rsvlm_zoo.data.schema import Sample
from rsvlm_zoo.data.sources.base import SampleSource


def apportion(total: int, weights: Sequence[float]) -> list[int]:
    """Split `total` into integer counts proportional to `weights` (largest remainders, ties to the first)."""
    share = np.asarray(weights, dtype=np.float64) / float(np.sum(weights)) * total
    counts = np.floor(share).astype(int)
    order = sorted(range(len(share)), key=lambda k: (-(share[k] - counts[k]), k))
    for k in order[: total - int(counts.sum())]:
        counts[k] += 1
    return [int(c) for c in counts]


def draw(length: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """`count` indices into a source of `length`: whole shuffled passes, then part of one more.

    No sample repeats before every sample was drawn.
    """
    passes = [rng.permutation(length) for _ in range(math.ceil(count / length))]
    return np.concatenate(passes)[:count] if passes else np.zeros(0, dtype=np.int64)


class MixedSource(SampleSource):
    """Samples of several sources in proportions set by `weights`; the samples themselves are unchanged.

    The mixture holds `num_samples` entries: source k gets `num_samples * w_k / sum(w)` of them (rounded by
    largest remainders, so the proportions are exact up to one sample), drawn as whole shuffled passes over
    the source before any sample repeats (a small source is repeated, a large one subsampled). The entries
    are then shuffled together. Everything depends only on `seed`, the weights and the source lengths, so the
    same seed gives the same mixture; the training loader still shuffles it every epoch. Each sample keeps
    its own `source` (annotation file) and `sample_id`.

    Args:
        sources: The sources to mix.
        weights: Sampling weight per source (positive, any scale); None: proportional to the source sizes.
        num_samples: Entries in the mixture; None: the sum of the source lengths.
        seed: Seed of the draw.

    Raises:
        ValueError: no sources, a weight count other than the source count, a weight that is not a positive
            finite number, a non-positive `num_samples`, or an empty source.
    """

    def __init__(
        self,
        sources: list[SampleSource],
        weights: list[float] | None = None,
        num_samples: int | None = None,
        seed: int = 0,
    ) -> None:
        if not sources:
            raise ValueError("MixedSource needs at least one source")
        if weights is not None:
            if len(weights) != len(sources):
                raise ValueError(
                    f"MixedSource got {len(sources)} sources but {len(weights)} weights; give one weight per source"
                )
            bad = [
                (k, w)
                for k, w in enumerate(weights)
                if isinstance(w, bool) or not isinstance(w, (int, float)) or not (math.isfinite(w) and w > 0)
            ]
            if bad:
                listed = ", ".join(f"weights[{k}]={w!r}" for k, w in bad)
                raise ValueError(f"MixedSource weights must be positive finite numbers; got {listed}")
        if num_samples is not None and (not isinstance(num_samples, int) or num_samples <= 0):
            raise ValueError(f"num_samples must be a positive int or None, got {num_samples!r}")
        self.sources, self.weights, self.num_samples, self.seed = list(sources), weights, num_samples, seed
        self._index: np.ndarray | None = None

    def _build_index(self) -> np.ndarray:
        lengths = [len(s) for s in self.sources]
        empty = [k for k, n in enumerate(lengths) if n == 0]
        if empty:
            raise ValueError(f"MixedSource: source(s) {empty} are empty; remove them or fix their data")
        weights = self.weights if self.weights is not None else lengths
        total = self.num_samples if self.num_samples is not None else sum(lengths)
        counts = apportion(total, weights)
        parts = []
        for k, (n, c) in enumerate(zip(lengths, counts, strict=True)):
            rng = np.random.default_rng([self.seed, k])
            parts.append(np.stack([np.full(c, k), draw(n, c, rng)], axis=1))
        entries = np.concatenate(parts)
        return entries[np.random.default_rng([self.seed, len(self.sources)]).permutation(len(entries))]

    @property
    def index(self) -> np.ndarray:
        """(source, sample index) per entry, shape (num_samples, 2)."""
        if self._index is None:
            self._index = self._build_index()
        return self._index

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, idx: int) -> Sample:
        source, sample = self.index[idx]
        return self.sources[int(source)][int(sample)]

    def source_of(self, idx: int) -> int:
        """Which of `sources` entry `idx` comes from."""
        return int(self.index[idx][0])

    def control(self) -> SampleSource | None:
        """The mixture of the sources' controls (same draw), when every source has one."""
        controls = [s.control() for s in self.sources]
        if any(c is None for c in controls):
            return None
        return MixedSource(controls, self.weights, self.num_samples, self.seed)  # type: ignore[arg-type]

    def tiled(self, tile_size: int | tuple[int, int], overlap: int = 0, min_visible: float = 0.5) -> SampleSource:
        """The mixture of the tiled sources (drawn over tiles, same weights and seed)."""
        from rsvlm_zoo.data.sources.tiled import tile_source

        tiled = [tile_source(s, tile_size, overlap, min_visible) for s in self.sources]
        return MixedSource(tiled, self.weights, self.num_samples, self.seed)
