"""Defences, in the two shapes the book's training loop and attacks accept.

* :mod:`.training` — adversarial training and its controls as objectives ``loss_fn(model, x, y)`` for
  :func:`advex.train_classifier` / :func:`advex.models.trained` (Goodfellow et al. 2015; Madry et al. 2018;
  Wong, Rice & Kolter 2020), and the per-epoch monitor that catches catastrophic overfitting.
"""
from .training import (fast_adversarial_loss, goodfellow_adversarial_loss, noise_augmented_loss,
                       pgd_adversarial_loss, robustness_monitor)

__all__ = ["fast_adversarial_loss", "goodfellow_adversarial_loss", "noise_augmented_loss", "pgd_adversarial_loss",
           "robustness_monitor"]
