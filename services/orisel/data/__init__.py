"""Data sets: sources (CIFAR-10, ImageFolder), splits and preprocessing, augmentation."""
