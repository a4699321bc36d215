"""Functions run in spawned processes by the distributed tests (they must live in an importable module)."""

from __future__ import annotations

import os
import socket

import torch
import torch.distributed as dist
from helpers import pad_batch

from mmtorch.audio import GlobalNorm


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def norm_items(seed: int = 0, feats: int = 5, lengths=(30, 17, 2, 1)) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [
        torch.randn(feats, n, generator=g, dtype=torch.float64) * (b + 1) + b for b, n in enumerate(lengths)
    ]


def fit_global_norm_on_rank(rank: int, world: int, port: int, out: str) -> None:
    """Each rank fits GlobalNorm on its shard of three batches; all_reduce makes them equal."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        shard = [pad_batch(norm_items(s)) for s in range(3) if s % world == rank]
        norm = GlobalNorm(5).fit(shard)
        torch.save(norm.state_dict(), f"{out}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()
