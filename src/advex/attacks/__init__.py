"""Attacks on classifiers of images.

Conventions, the same for every attack here (the ones users of cleverhans and foolbox rely on):

* inputs ``x`` are a batch (N, ...) in the valid box [0, 1] (pixel units; normalisation is inside the
  model); ``eps`` is in the same units; labels are integer class indices (any integer dtype);
* the model runs in eval mode during the attack and every sub-module gets its own mode back
  afterwards; its parameters are frozen meanwhile, so no gradient is left on them;
* the attack computes on the model's device and its result comes back on the device of ``x``
  (:func:`.core.returns_on_input_device`); the result is the adversarial batch, clipped to the box and (for attacks
  with a budget) inside the ε-ball around ``x``, with no autograd history; ``x`` is never modified;
* attacks work inside ``torch.no_grad()``; bad arguments raise ``ValueError`` naming the argument;
* statistics (accuracy, robust accuracy, confidence) come from :mod:`advex.evaluate`, not from attacks.

Modules: :mod:`.core` (gradients, directions, projections, random starts, the success test),
:mod:`.gradient` (FGSM, BIM, PGD), :mod:`.apgd` (Auto-PGD, APGD-T and the DLR loss of AutoAttack),
:mod:`.square` (the gradient-free Square attack), :mod:`.minimal` (L-BFGS, DeepFool), :mod:`.carlini_wagner`
(C&W L2), :mod:`.sparse` (one-pixel and greedy L0), :mod:`.templates` (template addition).
"""
from .core import attack_mode, attack_succeeded, input_gradient, project, random_offset, steepest_ascent
from .gradient import bim, bim_steps, fgsm, fgsm_direction, pgd, pgd_with_stats
from .apgd import apgd, apgd_targeted, dlr_loss, targeted_dlr_loss
from .square import square_attack, square_attack_with_stats
from .carlini_wagner import cw_l2
from .minimal import deepfool, lbfgs_attack
from .sparse import greedy_pixels, one_pixel_exhaustive
from .templates import add_template, follow_local_template, local_templates, unit_max

__all__ = ["add_template", "apgd", "apgd_targeted", "attack_mode", "attack_succeeded", "bim", "bim_steps", "cw_l2",
           "deepfool", "dlr_loss", "fgsm", "fgsm_direction", "follow_local_template", "greedy_pixels", "input_gradient",
           "lbfgs_attack", "local_templates", "one_pixel_exhaustive", "pgd", "pgd_with_stats", "project", "random_offset",
           "square_attack", "square_attack_with_stats", "steepest_ascent", "targeted_dlr_loss", "unit_max"]
