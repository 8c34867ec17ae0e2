"""advex: the shared package of the executable book on adversarial examples.

Every chapter imports it; all heavy computation goes through it and runs on
CUDA when present, else on the CPU (see :mod:`advex.device`).

Layout, by concept:

* :mod:`advex.attacks` — every attack (conventions stated once, in its docstring);
* :mod:`advex.models` — the classifiers and :func:`advex.models.trained`, the one recipe for trained models;
* :mod:`advex.train` and :mod:`advex.losses` — the one training loop and its objectives;
* :mod:`advex.defences` — adversarial training objectives, input-transformation defences with their BPDA/EOT
  surrogates, randomised smoothing and certification, Bram Cohen's augmentations;
* :mod:`advex.evaluate` — accuracy, robust accuracy, error and confidence under attack, flip sizes;
* :mod:`advex.smoothness` — loss surfaces (gradient masking made visible) and Bram Cohen's criterion, measured;
* :mod:`advex.sanity` — the sanity checks of a robustness evaluation (Carlini et al. 2019);
* :mod:`advex.verify` — proofs of robustness: interval and linear bounds, exact verification, Lipschitz
  networks, certified training;
* :mod:`advex.intervals` — 95% intervals of measured rates and whether two rates differ;
* :mod:`advex.data` — MNIST, photographs, the offline assets;
* :mod:`advex.theory` — closed forms that explain rather than attack;
* :mod:`advex.viz` — the plotting style, image drawing and the ε slider;
* :mod:`advex.tensors` — general tensor helpers (per-example reshapes, norms, logit margins);
* :mod:`advex.cache`, :mod:`advex.device`, :mod:`advex.modes`, :mod:`advex.seeding`, :mod:`advex.progress`,
  :mod:`advex.validation`, :mod:`advex.paths` — the plumbing.
"""
from .attacks import fgsm, pgd
from .cache import cached_model
from .device import describe_device, device_of, get_device
from .evaluate import accuracy, predict, robust_accuracy
from .models import mnist_classifier, trained
from .paths import data_dir, home, model_cache_dir
from .progress import progress
from .seeding import seed_everything
from .train import train_classifier
from .viz import PALETTE, Frame, eps_slider, show_image, show_signed, tile, use_book_style

__version__ = "0.4.0"

__all__ = [
    "Frame", "PALETTE", "accuracy", "cached_model", "data_dir", "describe_device", "device_of", "eps_slider", "fgsm",
    "get_device", "home", "mnist_classifier", "model_cache_dir", "pgd", "predict", "progress", "robust_accuracy",
    "seed_everything", "show_image", "show_signed", "tile", "train_classifier", "trained", "use_book_style",
]
