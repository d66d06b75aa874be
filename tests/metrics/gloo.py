"""Two-process gloo harness for the metric DDP tests: each rank writes its results, the test compares them."""

from __future__ import annotations

import pickle
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch.distributed as dist
import torch.multiprocessing as mp

WORLD_SIZE = 2


def free_port() -> int:
    """A TCP port free on this machine now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def gloo_group(rank: int, port: int) -> Iterator[None]:
    """A CPU process group of `WORLD_SIZE` ranks on localhost, destroyed on leaving."""
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD_SIZE, timeout=timedelta(seconds=90)
    )
    try:
        yield
    finally:
        dist.destroy_process_group()


def save_rank_results(out_dir: str, rank: int, results: dict[str, Any]) -> None:
    """Write one rank's results where `run_ranks` reads them."""
    Path(out_dir, f"rank{rank}.pkl").write_bytes(pickle.dumps(results))


def start_ranks(worker: Callable[..., None], out_dir: Path) -> Any:
    """Spawn `worker(rank, port, out_dir)` on every rank without waiting (the test computes meanwhile)."""
    return mp.spawn(worker, args=(free_port(), str(out_dir)), nprocs=WORLD_SIZE, join=False)


def rank_results(context: Any, out_dir: Path, seconds: float = 240) -> list[dict[str, Any]]:
    """Wait for the spawned ranks (failing the test after `seconds`) and return each rank's results."""
    deadline = time.monotonic() + seconds
    while not context.join(timeout=1):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.terminate()
            raise AssertionError("DDP workers did not finish in time")
    return [pickle.loads((out_dir / f"rank{rank}.pkl").read_bytes()) for rank in range(WORLD_SIZE)]
