"""Proofs of robustness: bounds that hold for every input in a ball, not just for the inputs an attack tried.

* :mod:`.network` — a Linear/Conv2d/ReLU/Flatten network read as alternating affine maps and ReLUs;
* :mod:`.bounds` — interval bound propagation, IBP (Gowal et al. 2018), the bounds certified training uses;
* :mod:`.crown` — CROWN-style backward linear bounds (Zhang et al. 2018), never looser than IBP;
* :mod:`.milp` — exact verification by mixed-integer programming with big-M constants from those bounds
  (Tjeng, Xiao & Tedrake 2019), solved by HiGHS through :func:`scipy.optimize.milp`;
* :mod:`.lipschitz` — a network with a provable L2 Lipschitz bound and its margin certificate
  (Tsuzuku, Sato & Sugiyama 2018);
* :mod:`.evidence` — chapter 5's attack ensemble, per example: what a certificate must never contradict;
* :mod:`.training` — the IBP objective with its ε ramp and clean/robust mixing, and the recipes.

Every bound here is for the L∞ ball of radius ε around x intersected with the pixel box [0, 1], unless it says
L2.  A certificate is a proof only up to floating-point rounding (the bounds are computed in float64).
"""
from .bounds import input_box, interval_bounds, interval_margin_bounds, verified_by_ibp
from .evidence import attack_ensemble, survives_attacks
from .crown import crown_bounds, crown_margin_bounds, layer_bounds, verified_by_crown
from .lipschitz import (LipschitzMLP, certified_l2_radius, lipschitz_bound, lipschitz_margin_loss,
                        verified_by_lipschitz)
from .milp import VerificationResult, verify_exactly
from .network import AffineReluForm, affine_relu_form, margin_matrix, verifiable_layers
from .training import RECIPES, IBPSchedule, ibp_loss

__all__ = ["AffineReluForm", "IBPSchedule", "LipschitzMLP", "RECIPES", "VerificationResult",
           "affine_relu_form", "attack_ensemble", "certified_l2_radius", "crown_bounds",
           "crown_margin_bounds", "ibp_loss", "input_box", "interval_bounds", "interval_margin_bounds",
           "layer_bounds", "lipschitz_bound", "lipschitz_margin_loss", "margin_matrix", "survives_attacks",
           "verifiable_layers", "verified_by_crown", "verified_by_ibp", "verified_by_lipschitz",
           "verify_exactly"]
