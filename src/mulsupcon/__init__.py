"""mulsupcon: multi-label supervised contrastive learning (Zhang & Wu, AAAI 2024)."""

__version__ = "0.1.0"
