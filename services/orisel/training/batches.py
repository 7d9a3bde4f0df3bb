"""What a training step draws: randomness that is a pure function of (seed, epoch, batch),
and images kept on the device as uint8 until a batch is drawn."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


def _seed_int(*parts: int) -> int:
    return int(np.random.SeedSequence(list(parts)).generate_state(1, dtype=np.uint64)[0] >> 1)


def epoch_permutation(seed: int, epoch: int, n: int) -> torch.Tensor:
    return torch.randperm(n, generator=torch.Generator().manual_seed(_seed_int(seed, 0, epoch)))


def batch_generator(seed: int, epoch: int, batch: int) -> torch.Generator:
    return torch.Generator().manual_seed(_seed_int(seed, 1, epoch, batch))


@dataclass
class DeviceData:
    """Images stay uint8 on the device; each batch is scaled and centred when drawn."""

    images: torch.Tensor  # N, C, H, W uint8
    labels: torch.Tensor  # N int64
    mean: torch.Tensor  # C, H, W float32 in [0, 1]
    channels_last: bool = False

    @classmethod
    def from_numpy(
        cls,
        images: np.ndarray,
        labels: np.ndarray,
        mean: np.ndarray,
        device: torch.device,
        channels_last: bool = False,
    ) -> DeviceData:
        return cls(
            torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))).to(device),
            torch.from_numpy(labels).to(device),
            torch.from_numpy(mean).to(device),
            channels_last,
        )

    def batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.images[idx].float().div_(255.0).sub_(self.mean)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, self.labels[idx]

    def __len__(self) -> int:
        return len(self.labels)
