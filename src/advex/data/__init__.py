"""Data the book attacks: MNIST (the verified copy or your own idx files), data sets derived from it,
bundled photographs, and the hash-pinned offline assets they come from."""
from .mnist import binary_digits, gaussian_rubbish, load_mnist, load_mnist_idx, resample_images
from .photos import PHOTOS, load_photo, preprocess

__all__ = ["PHOTOS", "binary_digits", "gaussian_rubbish", "load_mnist", "load_mnist_idx", "load_photo", "preprocess",
           "resample_images"]
