"""A training sampler whose order depends only on (seed, epoch), so a run resumed mid-epoch sees the same batches.

Lightning restores the model, optimiser, scheduler and loop counters from a checkpoint, but a plain shuffled
DataLoader starts its epoch again from the first batch in a new order: a run resumed mid-epoch would train on
other batches than the run that was interrupted. This sampler draws each epoch's permutation from `seed + epoch`
and can start that permutation at the first sample not yet trained on.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler


class EpochSeededSampler(Sampler[int]):
    """Shuffles `num_samples` indices with a generator seeded by `seed + epoch`.

    Args:
        num_samples: Dataset length.
        seed: Base seed of the permutations.
    """

    def __init__(self, num_samples: int, seed: int = 0) -> None:
        self.num_samples, self.seed = int(num_samples), int(seed)
        self.epoch = 0
        self._skip = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the permutation of `epoch` (Lightning calls this at the start of each epoch)."""
        self.epoch = int(epoch)

    def resume_after(self, num_seen: int) -> None:
        """Make the next iteration start after the first `num_seen` indices of the current epoch's permutation."""
        if not 0 <= num_seen <= self.num_samples:
            raise ValueError(f"cannot resume after {num_seen} samples of an epoch of {self.num_samples}")
        self._skip = int(num_seen)

    def permutation(self) -> list[int]:
        """This epoch's full order."""
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return torch.randperm(self.num_samples, generator=generator).tolist()

    def __iter__(self) -> Iterator[int]:
        skip, self._skip = self._skip, 0
        return iter(self.permutation()[skip:])

    def __len__(self) -> int:
        # The full epoch, also when resuming: Lightning counts the epoch's batches from its restored progress.
        return self.num_samples
