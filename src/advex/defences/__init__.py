"""Defences, in the two shapes the book's training loop and attacks accept.

* :mod:`.training` — adversarial training and its controls as objectives ``loss_fn(model, x, y)`` for
  :func:`advex.train_classifier` / :func:`advex.models.trained` (Goodfellow et al. 2015; Madry et al. 2018;
  Wong, Rice & Kolter 2020), and the per-epoch monitor that catches catastrophic overfitting.
* :mod:`.trades` — TRADES (Zhang et al. 2019): cross-entropy plus β times the KL divergence to the
  prediction at the worst point of the ball, the GPU recipe's alternative objective.
* :mod:`.transforms` — input transformations as ``nn.Module`` wrappers (blur, bit-depth reduction, random
  noise, a noisy vote) and what an adaptive attacker differentiates instead: BPDA and EOT
  (Athalye, Carlini & Wagner 2018).
* :mod:`.smoothing` — randomised smoothing (Cohen, Rosenfeld & Kolter 2019): noise training, PREDICT,
  CERTIFY with the Clopper–Pearson bound, certified accuracy, and the soft smoothed classifier.
* :mod:`.augmentations` — Bram Cohen's (2019) training-set augmentations: far-away digits and mosaics with
  soft labels.
"""
from .augmentations import cohen_augmented_loss, mosaic, shrink_confidence, shrink_digits, soft_cross_entropy
from .smoothing import (ABSTAIN, SmoothedSoftClassifier, certified_accuracy, certify, clopper_pearson_lower,
                        gaussian_noise_loss, predict, sample_counts, smoothed_probability)
from .training import (fast_adversarial_loss, goodfellow_adversarial_loss, noise_augmented_loss,
                       pgd_adversarial_loss, robustness_monitor)
from .trades import trades_adversarial_examples, trades_loss
from .transforms import (BitDepthReduction, ExpectationOverTransform, GaussianBlur, InputTransformDefence, MajorityVote,
                         RandomNoise, StraightThrough)

__all__ = ["ABSTAIN", "BitDepthReduction", "ExpectationOverTransform", "GaussianBlur",
           "InputTransformDefence", "MajorityVote", "RandomNoise", "SmoothedSoftClassifier",
           "StraightThrough", "certified_accuracy", "certify", "clopper_pearson_lower",
           "cohen_augmented_loss", "fast_adversarial_loss", "gaussian_noise_loss",
           "goodfellow_adversarial_loss", "mosaic", "noise_augmented_loss", "pgd_adversarial_loss", "predict",
           "robustness_monitor", "sample_counts", "shrink_confidence", "shrink_digits",
           "smoothed_probability", "soft_cross_entropy", "trades_adversarial_examples", "trades_loss"]
