"""The networks the verifiers read: Linear, Conv2d, ReLU and Flatten layers in (nested) ``nn.Sequential``.

Two views of one network.  :func:`verifiable_layers` lists its modules in order, for interval bound
propagation, which runs through them as they are (so certified training can differentiate through it).
:func:`affine_relu_form` multiplies out every run of affine layers between two ReLUs into one dense matrix,
z₁ = W₁x + b₁, a₁ = ReLU(z₁), z₂ = W₂a₁ + b₂, …, the form the linear bounds and the mixed-integer program
work with.  Dropout and Identity are allowed and act as the identity (verification is in eval mode).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from ..validation import check_eps, check_images

__all__ = ["AffineReluForm", "affine_relu_form", "margin_matrix", "verifiable_layers"]

AFFINE = (nn.Linear, nn.Conv2d, nn.Flatten)
PASS_THROUGH = (nn.Dropout, nn.Identity)


def verifiable_layers(model: nn.Module) -> list[nn.Module]:
    """The model's layers in order; ``ValueError`` for anything but Linear, Conv2d, ReLU, Flatten (+ Dropout, Identity)."""
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be an nn.Module, got {type(model).__name__}")
    if isinstance(model, AFFINE + (nn.ReLU,)):
        return [model]
    if isinstance(model, PASS_THROUGH):
        return []
    if not isinstance(model, nn.Sequential):
        raise ValueError(f"model must be an nn.Sequential of Linear, Conv2d, ReLU and Flatten layers; "
                         f"got a {type(model).__name__}, whose forward the verifiers cannot read")
    layers = [layer for child in model for layer in verifiable_layers(child)]
    affine_seen = [isinstance(layer, (nn.Linear, nn.Conv2d)) for layer in layers]
    if not any(affine_seen):
        raise ValueError("model must contain at least one Linear or Conv2d layer")
    if isinstance(layers[-1], nn.ReLU):
        raise ValueError("model must end with a Linear (or Conv2d) layer that gives the logits, not with a ReLU")
    return layers


def apply_linear_part(layer: nn.Module, v: torch.Tensor, *, bias: bool) -> torch.Tensor:
    """``layer`` applied to a batch ``v`` in ``v``'s dtype, with or without its bias (differentiable in the weights)."""
    if isinstance(layer, nn.Flatten):
        return layer(v)
    weight = layer.weight.to(v.dtype)
    b = layer.bias.to(v.dtype) if (bias and layer.bias is not None) else None
    if isinstance(layer, nn.Linear):
        return F.linear(v, weight, b)
    return F.conv2d(v, weight, b, layer.stride, layer.padding, layer.dilation, layer.groups)


def apply_abs_linear_part(layer: nn.Module, v: torch.Tensor) -> torch.Tensor:
    """|W| v for the layer's linear part (the radius of an interval after an affine map)."""
    if isinstance(layer, nn.Flatten):
        return layer(v)
    weight = layer.weight.to(v.dtype).abs()
    if isinstance(layer, nn.Linear):
        return F.linear(v, weight)
    return F.conv2d(v, weight, None, layer.stride, layer.padding, layer.dilation, layer.groups)


@dataclass
class AffineReluForm:
    """z₁ = W₁x + b₁, then for k ≥ 2: z_k = W_k ReLU(z_{k−1}) + b_k; the last z is the logits (float64)."""

    weights: list[torch.Tensor]   # W_k: (n_k, n_{k−1}), n₀ = the input's size
    biases: list[torch.Tensor]    # b_k: (n_k,)
    input_shape: tuple[int, ...]

    @property
    def widths(self) -> list[int]:
        return [w.shape[0] for w in self.weights]

    def forward(self, x_flat: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Logits and the pre-activations of every ReLU layer, for a batch of flattened inputs."""
        z = x_flat.to(torch.float64) @ self.weights[0].T + self.biases[0]
        pre = []
        for w, b in zip(self.weights[1:], self.biases[1:]):
            pre.append(z)
            z = z.clamp(min=0) @ w.T + b
        return z, pre


@torch.no_grad()
def affine_relu_form(model: nn.Module, input_shape: tuple[int, ...]) -> AffineReluForm:
    """The model as dense affine maps separated by ReLUs, in float64 (``input_shape`` excludes the batch)."""
    layers = verifiable_layers(model)
    input_shape = tuple(int(s) for s in input_shape)
    size = 1
    for s in input_shape:
        size *= s
    device = next(model.parameters()).device
    weights, biases = [], []
    # the running affine map, kept as the images of the basis vectors (columns) and of the origin
    columns = torch.eye(size, dtype=torch.float64, device=device).reshape(size, *input_shape)
    offset = torch.zeros(1, *input_shape, dtype=torch.float64, device=device)
    for layer in layers:
        if isinstance(layer, nn.ReLU):
            weights.append(columns.reshape(columns.shape[0], -1).T.contiguous())
            biases.append(offset.reshape(-1))
            n = weights[-1].shape[0]
            columns = torch.eye(n, dtype=torch.float64, device=device).reshape(n, *offset.shape[1:])
            offset = torch.zeros_like(offset)
            continue
        columns = apply_linear_part(layer, columns, bias=False)
        offset = apply_linear_part(layer, offset, bias=True)
    weights.append(columns.reshape(columns.shape[0], -1).T.contiguous())
    biases.append(offset.reshape(-1))
    return AffineReluForm(weights, biases, input_shape)


def margin_matrix(y: torch.Tensor, num_classes: int, dtype=torch.float64) -> torch.Tensor:
    """C with C[n, j] = e_{y_n} − e_j: row j of C·z is the margin z_y − z_j (row y is zero)."""
    eye = torch.eye(num_classes, dtype=dtype, device=y.device)
    return eye[y].unsqueeze(1) - eye.unsqueeze(0)


def check_ball(x: torch.Tensor, eps) -> float:
    """Validate a batch of images and an L∞ radius; returns ε as a float."""
    check_images(x, "x")
    if x.dim() < 2:
        raise ValueError(f"x must be a batch (N, ...) of inputs, got shape {tuple(x.shape)}")
    return check_eps(eps)


def check_targets(y, x: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Integer labels, one per example, each in [0, num_classes)."""
    if not isinstance(y, torch.Tensor) or y.dtype.is_floating_point or y.dtype == torch.bool:
        raise ValueError(f"y must be an integer tensor of class indices, got {y!r:.60}")
    if y.shape != (x.shape[0],):
        raise ValueError(f"y must have shape ({x.shape[0]},), one label per example, got {tuple(y.shape)}")
    if len(y) and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise ValueError(f"y must hold class indices in [0, {num_classes - 1}]")
    return y.long()
