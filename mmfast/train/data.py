"""The training data stream: an endless, sharded, resumable sequence of clips.

Draw d of a run (d = 0, 1, 2, ... over all processes) is item perm_e[d mod N] of epoch e = d // N,
with its augmentation drawn from a generator seeded by (seed, d). Process `rank` of `world` takes
draws rank, rank + world, ...; after `step` steps of `batch` it resumes at its draw step * batch.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

import torch
from torch import Tensor
from torch.utils.data import Dataset, Sampler

from mmfast.train.seeding import STREAMS, derive_seed


class ClipDataset(Protocol):
    """What the trainer needs of a dataset: its size and a seeded item."""

    def __len__(self) -> int: ...

    def get(
        self, index: int, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]: ...


class Draws(Dataset):
    """Map a global draw id to (video [F, 3, H, W], audio [C, L])."""

    def __init__(self, dataset: ClipDataset, seed: int):
        if len(dataset) == 0:
            raise ValueError("the training dataset is empty")
        self.dataset = dataset
        self.seed = seed
        self._perm: tuple[int, Tensor] | None = None

    def permutation(self, epoch: int) -> Tensor:
        if self._perm is None or self._perm[0] != epoch:
            g = torch.Generator().manual_seed(derive_seed(self.seed, STREAMS["epoch"], epoch))
            self._perm = (epoch, torch.randperm(len(self.dataset), generator=g))
        return self._perm[1]

    def __getitem__(self, draw: int) -> tuple[Tensor, Tensor]:
        epoch, pos = divmod(int(draw), len(self.dataset))
        g = torch.Generator().manual_seed(derive_seed(self.seed, STREAMS["data"], int(draw)))
        return self.dataset.get(int(self.permutation(epoch)[pos]), g)


class DrawSampler(Sampler[int]):
    """This process's draw ids, forever, from its `start`-th one."""

    def __init__(self, start: int, rank: int = 0, world_size: int = 1):
        self.start, self.rank, self.world_size = start, rank, world_size

    def __iter__(self) -> Iterator[int]:
        k = self.start
        while True:
            yield k * self.world_size + self.rank
            k += 1
