"""StreamingSource: samples read from LitData shards written by `rsvlm data pack` (local folder or object store).

A packed item holds the image already at the model's input policy (PNG) and the rest of the `Sample` as JSON
(see `rsvlm_zoo.data.pack`), so reading a sample decodes one small PNG instead of a whole scene.

`input_dir` is a local folder or an object-store URI that LitData reads, e.g. `s3://bucket/packs/isaid-128`
(credentials as for boto3: environment, `~/.aws`, or `storage_options`). Remote chunks are downloaded on
demand into `cache_dir` (LitData's default cache when None), at most `max_cache_size` kept. Random access
works everywhere; for object stores read with `StreamingSampler`, whose order visits one chunk at a time.

Order: `StreamingSampler` (or `StreamingSource.order`) gives each epoch an order fixed by (seed, epoch):
chunks shuffled, samples shuffled inside each chunk, then the order is cut into one contiguous share per
rank: shares are disjoint and no sample repeats (with `drop_last`, the last `len % world_size` samples of the
epoch's order are left out so every rank has as many). `resume_after(n)` / `state_dict()` restart an epoch
after its first `n` samples. `RegionDataModule` trains a `StreamingSource` with this sampler (its rank and world
size from the trainer); it is a `DistributedSampler`, so Lightning keeps it under DDP instead of wrapping it in
its own (which would pad the shares by repeating samples), and a run resumed mid-epoch under several
processes continues each rank's own share exactly.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DistributedSampler

from rsvlm_zoo.data.schema import Sample
from rsvlm_zoo.data.sources.base import SampleSource
from rsvlm_zoo.data.tiling import as_size

REMOTE_PREFIXES = ("s3://", "gs://", "gcs://", "azure://", "abfs://", "hf://", "local:")


def is_remote(path: str) -> bool:
    """Whether `path` is an object-store URI rather than a local folder."""
    return str(path).startswith(REMOTE_PREFIXES)


class StreamingSource(SampleSource):
    """Samples of a shard folder written by `rsvlm data pack` (`rsvlm_zoo.data.pack.pack`).

    Args:
        input_dir: The shard folder, or an object-store URI (`s3://bucket/prefix`).
        cache_dir: Where remote chunks are cached (LitData's default when None).
        max_cache_size: Largest cache of downloaded chunks (e.g. `"25GB"`).
        storage_options: Object-store options passed to LitData (e.g. endpoint, credentials).

    Raises:
        ImportError: when LitData is not installed (`pip install 'rsvlm_zoo[stream]'`).
        FileNotFoundError: a local folder without `index.json`.
    """

    def __init__(
        self,
        input_dir: str | Path,
        cache_dir: str | None = None,
        max_cache_size: str = "25GB",
        storage_options: dict[str, Any] | None = None,
    ) -> None:
        from rsvlm_zoo.data.packing.settings import require_litdata

        require_litdata()
        self.input_dir = str(input_dir)
        if not is_remote(self.input_dir):
            self.input_dir = str(Path(self.input_dir).resolve())
            if not (Path(self.input_dir) / "index.json").is_file():
                raise FileNotFoundError(f"{input_dir}: no index.json; make the shards with rsvlm data pack")
        self.cache_dir, self.max_cache_size = cache_dir, max_cache_size
        self.storage_options = dict(storage_options or {})
        self._dataset: Any = None
        self._manifest: dict[str, Any] | None = None

    # ------------------------------------------------------------ LitData
    @property
    def dataset(self) -> Any:
        """The `litdata.StreamingDataset` (opened on first use in each process)."""
        if self._dataset is None:
            import litdata

            kwargs: dict[str, Any] = {"max_cache_size": self.max_cache_size}
            if self.cache_dir is not None:
                kwargs["cache_dir"] = self.cache_dir
            if self.storage_options:
                kwargs["storage_options"] = self.storage_options
            self._dataset = litdata.StreamingDataset(self.input_dir, **kwargs)
        return self._dataset

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_dataset"] = None  # each DataLoader worker opens its own
        return state

    @property
    def manifest(self) -> dict[str, Any]:
        """`pack.json` (settings, counts, skip reasons); empty when it cannot be read (remote without fsspec)."""
        if self._manifest is None:
            self._manifest = {}
            try:
                if is_remote(self.input_dir):
                    import fsspec

                    with fsspec.open(f"{self.input_dir.rstrip('/')}/pack.json", "r", **self.storage_options) as f:
                        self._manifest = json.load(f)
                else:
                    path = Path(self.input_dir) / "pack.json"
                    if path.is_file():
                        self._manifest = json.loads(path.read_text(encoding="utf-8"))
            except (ImportError, OSError, ValueError):
                self._manifest = {}
        return self._manifest

    def chunk_sizes(self) -> list[int]:
        """Samples per chunk, in index order (their sum is `len(self)`)."""
        return [int(end - start) for start, end in self.dataset.region_of_interest]

    # ------------------------------------------------------------ SampleSource
    def __len__(self) -> int:
        return len(self.dataset)

    def record(self, idx: int) -> tuple[dict[str, Any], Sample, bytes]:
        """(provenance, sample with an empty image, PNG bytes) of entry `idx`, without decoding the image."""
        from rsvlm_zoo.data.packing.items import decode_record

        item = self.dataset[int(idx)]
        provenance, sample = decode_record(item["record"])
        return provenance, sample, item["image"]

    def provenance(self, idx: int) -> dict[str, Any]:
        """Where entry `idx` came from.

        Returns:
            `source` (annotation file), `record` (position among the reader's samples), `image` (the image file).
        """
        return self.record(idx)[0]

    def __getitem__(self, idx: int) -> Sample:
        from PIL import Image

        if not -len(self) <= idx < len(self):
            raise IndexError(f"index {idx} out of range for {len(self)} packed samples")
        _, sample, png = self.record(idx % len(self))
        with Image.open(BytesIO(png)) as im:
            sample.image = np.array(im.convert("RGB"))
        return sample

    def tiled(self, tile_size: int | tuple[int, int], overlap: int = 0, min_visible: float = 0.5) -> SampleSource:
        """This source itself when it was packed with `--image-policy tile` and the same tile settings.

        Raises:
            ValueError: when it was packed whole (`squash`) or with other tile settings.
        """
        m = self.manifest
        if not m:
            return self
        if m.get("image_policy") != "tile":
            raise ValueError(
                f"{self.input_dir} was packed with image_policy {m.get('image_policy')!r}, not 'tile'; pack it "
                "again with --image-policy tile, or train with image_policy: squash"
            )
        packed = (as_size(m["input_size"]), m.get("tile_overlap", 0), m.get("tile_min_visible", 0.5))
        asked = (as_size(tile_size), overlap, min_visible)
        if asked != packed:
            raise ValueError(
                f"{self.input_dir} holds tiles {packed[0]} with overlap {packed[1]} and min_visible {packed[2]}, but "
                f"{asked} was asked; give the data module the packed settings or pack again"
            )
        return self

    # ------------------------------------------------------------ order
    def order(
        self, seed: int = 0, epoch: int = 0, rank: int = 0, world_size: int = 1, drop_last: bool = True
    ) -> np.ndarray:
        """This rank's indices for `epoch`.

        Chunks are shuffled, samples shuffled inside each chunk, and the order is cut in `world_size`
        contiguous disjoint shares (see the module docstring).
        """
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, {world_size}), got {rank}")
        sizes = self.chunk_sizes()
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64) if sizes else np.zeros(0, np.int64)
        rng = np.random.default_rng([int(seed), int(epoch)])
        chunks = rng.permutation(len(sizes))
        parts = [starts[c] + rng.permutation(sizes[c]) for c in chunks]
        full = np.concatenate(parts) if parts else np.zeros(0, np.int64)
        n = len(full)
        if drop_last:
            per = n // world_size
            return full[rank * per : (rank + 1) * per]
        return full[rank * n // world_size : (rank + 1) * n // world_size]


class StreamingSampler(DistributedSampler):
    """Indices of a `StreamingSource` in chunk-local shuffled order per (seed, epoch), one disjoint share per rank.

    A `DistributedSampler` (whose `__init__` it does not use) only so Lightning keeps it under DDP; it has the
    same attributes (`num_replicas`, `rank`, `epoch`, `seed`, `drop_last`, `shuffle`, `dataset`).

    Args:
        source: The packed source.
        seed: Base seed of the order.
        rank: This process's rank (default: from `torch.distributed` when initialised, else 0).
        world_size: Number of processes (default: from `torch.distributed` when initialised, else 1).
        drop_last: Give every rank the same number of samples (the epoch's last `len % world_size` are left out).
    """

    def __init__(
        self,
        source: StreamingSource,
        seed: int = 0,
        rank: int | None = None,
        world_size: int | None = None,
        drop_last: bool = True,
    ) -> None:
        dist = torch.distributed.is_available() and torch.distributed.is_initialized()
        self.rank = rank if rank is not None else (torch.distributed.get_rank() if dist else 0)
        self.world_size = world_size if world_size is not None else (torch.distributed.get_world_size() if dist else 1)
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f"rank must be in [0, {self.world_size}), got {self.rank}")
        self.source, self.seed, self.drop_last = source, int(seed), drop_last
        self.dataset, self.num_replicas, self.shuffle = source, self.world_size, True
        self.epoch = 0
        self._skip = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the order of `epoch`."""
        self.epoch = int(epoch)

    def indices(self) -> np.ndarray:
        """This rank's full order for the current epoch."""
        return self.source.order(self.seed, self.epoch, self.rank, self.world_size, self.drop_last)

    def resume_after(self, num_seen: int) -> None:
        """Make the next iteration start after the first `num_seen` indices of this rank's current order."""
        if not 0 <= num_seen <= len(self):
            raise ValueError(f"cannot resume after {num_seen} samples of an epoch of {len(self)}")
        self._skip = int(num_seen)

    def state_dict(self, num_seen: int) -> dict[str, int]:
        """What resumes this sampler after `num_seen` samples of the current epoch (save it with the checkpoint)."""
        return {"seed": self.seed, "epoch": self.epoch, "num_seen": int(num_seen), "world_size": self.world_size}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Continue from a `state_dict` (same seed and world size).

        Raises:
            ValueError: when the state was saved with another seed or world size.
        """
        if state["seed"] != self.seed or state["world_size"] != self.world_size:
            raise ValueError(
                f"the saved order has seed {state['seed']} and world size {state['world_size']}, this sampler "
                f"{self.seed} and {self.world_size}; resume with the same settings"
            )
        self.set_epoch(state["epoch"])
        self.resume_after(state["num_seen"])

    def __iter__(self) -> Iterator[int]:
        skip, self._skip = self._skip, 0
        return iter(self.indices()[skip:].tolist())

    def __len__(self) -> int:
        n = sum(self.source.chunk_sizes())
        if self.drop_last:
            return n // self.world_size
        return (self.rank + 1) * n // self.world_size - self.rank * n // self.world_size
