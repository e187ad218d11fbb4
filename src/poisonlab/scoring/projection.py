"""A seeded random projection generated block by block, never held whole.

The paper projects LoRA gradients with TRAK's Rademacher projector. For
SmolLM2-135M the LoRA gradient has 460,800 coordinates, so a dense 4,096-column
matrix would take 7.5 GB. Here the matrix P (grad_dim x proj_dim) is defined
as a stack of row blocks, block b drawn from its own generator seeded by
(seed, b); projecting regenerates one block at a time, so memory is one block
(block_rows x proj_dim floats) whatever the model size. Like TRAK, no 1/sqrt(k)
scaling is applied: scores are compared with each other only.
"""

from __future__ import annotations

import hashlib

import torch


def block_seed(seed: int, block: int) -> int:
    """The generator seed of row block ``block``: a hash, so nearby seeds give unrelated blocks."""
    return int.from_bytes(hashlib.sha256(f"rademacher:{seed}:{block}".encode()).digest()[:8], "little") >> 1


RECIPE = "rademacher-bytes-v1"  # names how entries are drawn: part of every cache key of projected values

# bit k of byte v -> +1 if set, else -1: one random byte gives 8 signs
_SIGNS = ((torch.arange(256)[:, None] >> torch.arange(8)) & 1).float() * 2 - 1


def rademacher_block(seed: int, block: int, rows: int, proj_dim: int) -> torch.Tensor:
    """Row block ``block`` of the projection matrix: +-1 entries, each with probability 1/2.

    Entry (i, j) is bit j % 8 of random byte (i, j // 8), mapped to +1 (set) or -1. Drawing bytes and
    expanding them through a table is ~1.7x faster on a CPU than drawing one float per entry, and
    drawing the matrix is what the projection of a large LoRA gradient spends most of its time on.
    """
    generator = torch.Generator().manual_seed(block_seed(seed, block))
    n_bytes = -(-proj_dim // 8)
    random_bytes = torch.randint(0, 256, (rows, n_bytes), generator=generator, dtype=torch.uint8)
    signs = torch.nn.functional.embedding(random_bytes.long(), _SIGNS).reshape(rows, n_bytes * 8)
    return signs[:, :proj_dim]


class RademacherProjector:
    """x -> x @ P for a (grad_dim x proj_dim) Rademacher matrix P regenerated in row blocks."""

    def __init__(self, grad_dim: int, proj_dim: int, seed: int = 0, block_rows: int = 4096) -> None:
        self.grad_dim, self.proj_dim, self.seed, self.block_rows = grad_dim, proj_dim, seed, block_rows

    @property
    def n_blocks(self) -> int:
        return -(-self.grad_dim // self.block_rows)

    def block(self, index: int) -> torch.Tensor:
        lo = index * self.block_rows
        return rademacher_block(self.seed, index, min(self.block_rows, self.grad_dim - lo), self.proj_dim)

    def project(self, grads: torch.Tensor) -> torch.Tensor:
        """Project a (n, grad_dim) batch; pass many rows at once, as each call regenerates every block."""
        if grads.ndim != 2 or grads.shape[1] != self.grad_dim:
            raise ValueError(f"expected (n, {self.grad_dim}) gradients, got {tuple(grads.shape)}")
        grads = grads.to(torch.float32)
        out = torch.zeros(grads.shape[0], self.proj_dim, dtype=torch.float32)
        for index in range(self.n_blocks):
            lo = index * self.block_rows
            out.addmm_(grads[:, lo : lo + self.block_rows], self.block(index))
        return out

    def dense(self) -> torch.Tensor:
        """The whole matrix: for tests and small problems only."""
        return torch.cat([self.block(i) for i in range(self.n_blocks)])


PROJECTIONS = {"rademacher": RademacherProjector}
