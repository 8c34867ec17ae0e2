"""Input-transformation defences, and the attacks that know them (Athalye, Carlini & Wagner 2018).

Each defence is an ``nn.Module`` that transforms its input and hands the result to a classifier:
``defence(x) = model(t(x))``.  The attacks and :mod:`advex.evaluate` take it like any other model.
The transforms are the ones readers keep proposing (for instance in the comment thread of the Hackaday
article on the one-pixel attack): blur the image, quantise it, add random noise, or take a majority
vote over several noisy copies.

Each of them makes the gradient that a plain attack follows useless, without making the classifier
robust:

* :class:`BitDepthReduction` rounds, and the derivative of rounding is 0 almost everywhere: the
  gradient vanishes ("shattered gradients");
* :class:`RandomNoise` answers each query with fresh noise: one gradient is a noisy sample
  ("stochastic gradients");
* :class:`MajorityVote` counts votes: piecewise constant, its gradient is 0;
* :class:`GaussianBlur` is differentiable and smooth: it only helps against an attacker who does not
  know it is there.

:meth:`~InputTransformDefence.attack_surrogate` returns what an *adaptive* attacker differentiates
instead (Athalye et al. 2018): the defence itself for the blur; **BPDA** for rounding, with the
transform replaced by the identity on the backward pass (:class:`StraightThrough`, their §4.1); and
**EOT** for the random defences, the log of the mean softmax over many draws of the randomness
(:class:`ExpectationOverTransform`, their §4.3).  An attack crafted on the surrogate is then
evaluated on the defence.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from ..validation import check_model, check_positive, check_positive_int

__all__ = ["BitDepthReduction", "ExpectationOverTransform", "GaussianBlur", "InputTransformDefence", "MajorityVote",
           "RandomNoise", "StraightThrough"]


class InputTransformDefence(nn.Module):
    """``model(transform(x))``; subclasses define :meth:`transform` and what an adaptive attacker differentiates."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = check_model(model)

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(self.transform(x))

    def attack_surrogate(self, samples: int = 32) -> nn.Module:
        """The module an adaptive attack differentiates (here the defence itself: it is differentiable)."""
        return self


class GaussianBlur(InputTransformDefence):
    """Blur with a Gaussian kernel of standard deviation ``sigma`` pixels (zero padding keeps the background black)."""

    def __init__(self, model: nn.Module, sigma: float = 1.0):
        super().__init__(model)
        self.sigma = check_positive(sigma, "sigma")
        radius = max(1, math.ceil(3 * self.sigma))
        offsets = torch.arange(-radius, radius + 1, dtype=torch.float32)
        kernel = torch.exp(-offsets**2 / (2 * self.sigma**2))
        self.register_buffer("kernel", kernel / kernel.sum(), persistent=False)

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        # a 2-D Gaussian is separable: blur the rows, then the columns, each channel on its own
        channels, radius = x.shape[1], len(self.kernel) // 2
        # the wrapped model may have moved to a GPU after this defence was built, without it: follow x
        rows = self.kernel.to(x.device, x.dtype).view(1, 1, 1, -1).repeat(channels, 1, 1, 1)
        x = F.conv2d(x, rows, padding=(0, radius), groups=channels)
        return F.conv2d(x, rows.transpose(2, 3), padding=(radius, 0), groups=channels)

    def extra_repr(self) -> str:
        return f"sigma={self.sigma}"


class BitDepthReduction(InputTransformDefence):
    """Round every pixel to one of 2^``bits`` grey levels: round(x (2^b − 1)) / (2^b − 1) (Xu, Evans & Qi 2018).

    ``bits = 8`` is the quantisation of an 8-bit image file; ``bits = 1`` thresholds at ½.  The derivative
    of rounding is zero wherever it exists, so a plain gradient attack sees no gradient at all.
    """

    def __init__(self, model: nn.Module, bits: int = 1):
        super().__init__(model)
        self.bits = check_positive_int(bits, "bits")
        if self.bits > 16:
            raise ValueError(f"bits must be between 1 and 16, got {bits}")
        self.levels = 2**self.bits - 1

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        return torch.round(x * self.levels) / self.levels

    def attack_surrogate(self, samples: int = 32) -> nn.Module:
        """BPDA: rounding on the forward pass, the identity on the backward pass."""
        return StraightThrough(self)

    def extra_repr(self) -> str:
        return f"bits={self.bits}"


class RandomNoise(InputTransformDefence):
    """Add fresh Gaussian noise of standard deviation ``sigma`` to every query, clipped to the image box [0, 1].

    The noise comes from torch's global generator (seed it for a reproducible run), so two calls on the
    same input can answer differently: the defence is random, and so is each gradient through it.
    """

    def __init__(self, model: nn.Module, sigma: float = 0.3):
        super().__init__(model)
        self.sigma = check_positive(sigma, "sigma")

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        return (x + self.sigma * torch.randn_like(x)).clamp(0.0, 1.0)

    def attack_surrogate(self, samples: int = 32) -> nn.Module:
        """EOT: the log of the mean softmax over ``samples`` draws of the noise."""
        return ExpectationOverTransform(self, samples)

    def extra_repr(self) -> str:
        return f"sigma={self.sigma}"


class MajorityVote(InputTransformDefence):
    """Classify ``copies`` noisy copies (:class:`RandomNoise`) and return the votes: log(votes_c / copies).

    The output is a valid set of "logits" whose argmax is the majority class (ties go to the lower class
    index), but it is piecewise constant in x: its gradient is zero, or undefined at a change of vote.
    An adaptive attacker differentiates the expected softmax of the noisy classifier instead (EOT).
    """

    def __init__(self, model: nn.Module, sigma: float = 0.3, copies: int = 9):
        super().__init__(model)
        self.noisy = RandomNoise(model, sigma)
        self.copies = check_positive_int(copies, "copies")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch = x.shape[0]
        copies = x.repeat(self.copies, *([1] * (x.dim() - 1)))       # copy k of example i at row k·batch + i
        logits = self.noisy(copies)
        votes = F.one_hot(logits.argmax(1), logits.shape[1]).view(self.copies, batch, -1).sum(0)
        # 0 · logits keeps the output in the autograd graph: an attack asking for the gradient gets
        # what the vote really has, zeros, rather than an error
        return torch.log(votes.to(x.dtype) / self.copies + 1e-6) + 0.0 * logits.view(self.copies, batch, -1).mean(0)

    def attack_surrogate(self, samples: int = 32) -> nn.Module:
        return ExpectationOverTransform(self.noisy, samples)

    def extra_repr(self) -> str:
        return f"sigma={self.noisy.sigma}, copies={self.copies}"


class StraightThrough(nn.Module):
    """BPDA for an input transform t ≈ identity: forward ``model(t(x))``, backward as if t(x) = x.

    Athalye, Carlini & Wagner (2018, §4.1): x + (t(x) − x) computed with the difference detached has the
    value t(x) and the derivative of x.  The forward pass, and so every prediction, is the defence's own.
    """

    def __init__(self, defence: InputTransformDefence):
        super().__init__()
        if not isinstance(defence, InputTransformDefence):
            raise ValueError(f"defence must be an InputTransformDefence, got {type(defence).__name__}")
        self.defence = defence

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.defence.model(x + (self.defence.transform(x) - x).detach())


class ExpectationOverTransform(nn.Module):
    """log E_t[softmax(model(x))] over ``samples`` calls of a random ``model`` (Athalye et al. 2018, §4.3).

    The mean is taken inside the forward pass, so its gradient is the average of the sampled gradients:
    an attack that ascends it ascends the expected loss of the random defence, not one noisy draw.
    Each call draws new randomness from the random model (torch's global generator).
    """

    def __init__(self, model: nn.Module, samples: int = 32):
        super().__init__()
        self.model = check_model(model)
        self.samples = check_positive_int(samples, "samples")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch = x.shape[0]
        copies = x.repeat(self.samples, *([1] * (x.dim() - 1)))
        log_probs = F.log_softmax(self.model(copies), dim=1).view(self.samples, batch, -1)
        return torch.logsumexp(log_probs, dim=0) - math.log(self.samples)

    def extra_repr(self) -> str:
        return f"samples={self.samples}"
