"""advex: the shared package of the executable book on adversarial examples.

Every chapter imports it; all heavy computation goes through it and runs on
CUDA when present, else on the CPU (see :mod:`advex.device`).
"""
from .cache import cached_model
from .device import describe_device, get_device
from .paths import data_dir, home, model_cache_dir
from .seeding import seed_everything
from .slider import Frame, eps_slider
from .style import PALETTE, show_image, show_signed, use_book_style

__version__ = "0.1.0"

__all__ = [
    "Frame", "PALETTE", "cached_model", "data_dir", "describe_device", "eps_slider", "get_device",
    "home", "model_cache_dir", "seed_everything", "show_image", "show_signed", "use_book_style",
]

from .attacks import fgsm  # noqa: E402
from .progress import progress  # noqa: E402
from .train import accuracy, predict, train_classifier  # noqa: E402

__all__ += ["accuracy", "fgsm", "predict", "progress", "train_classifier"]
