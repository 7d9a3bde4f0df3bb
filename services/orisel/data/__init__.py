"""Data sets: CIFAR-10 in both common layouts, the paper's preprocessing, ImageNet folders."""

from orisel.data.augment import random_shift_flip
from orisel.data.prepare import (
    PreparedData,
    SplitSpec,
    corrupt_labels,
    mean_image,
    prepare,
    stratified_split,
)
from orisel.data.sources import ImageDataset, download_cifar10, load_cifar10

__all__ = [
    "ImageDataset",
    "PreparedData",
    "SplitSpec",
    "corrupt_labels",
    "download_cifar10",
    "load_cifar10",
    "mean_image",
    "prepare",
    "random_shift_flip",
    "stratified_split",
]
