"""Attacks on classifiers of images.

Conventions, the same for every attack here (the ones users of cleverhans and foolbox rely on):

* inputs ``x`` are a batch (N, ...) in the valid box [0, 1] (pixel units; normalisation is inside the
  model); ``eps`` is in the same units; labels are integer class indices (any integer dtype);
* the model runs in eval mode during the attack and every sub-module gets its own mode back
  afterwards; its parameters are frozen meanwhile, so no gradient is left on them;
* the attack computes on the model's device and its result comes back on the device of ``x``; the result is the adversarial batch, clipped to the box and (for attacks
  with a budget) inside the ε-ball around ``x``, with no autograd history; ``x`` is never modified;
* attacks work inside ``torch.no_grad()``; bad arguments raise ``ValueError`` naming the argument;
* statistics (accuracy, robust accuracy, confidence) come from :mod:`advex.evaluate`, not from attacks.

These are carried out once, by the decorator :func:`.core.attack`: it checks ``x``, the labels and ε, moves them to
the model's device, runs the attack in attack mode without gradients and returns on the device of ``x``.  Every
attack exposes its undecorated body as ``.inner`` (e.g. ``pgd.inner``), for callers whose inputs are already
checked and on the device (other attacks, the evaluator, the training losses), called inside ``attack_mode``.
The black-box attacks open with :func:`.core.clean_query`.  Tensor helpers shared with the rest of the package
(``per_example``, ``l2_norms``, ``logit_margins``, ``attack_succeeded``, ``num_classes_of``) live in
:mod:`advex.tensors`.

Modules: :mod:`.core` (the contract, gradients, directions, projections, random starts, the success test),
:mod:`.gradient` (FGSM, BIM, PGD), :mod:`.apgd` (Auto-PGD, APGD-T and the DLR loss of AutoAttack),
:mod:`.square` (the gradient-free Square attack, L∞ and L2), :mod:`.minimal` (L-BFGS, DeepFool), :mod:`.carlini_wagner`
(C&W L2), :mod:`.sparse` (one-pixel and greedy L0 by exhaustive search), :mod:`.templates` (template addition).

Black-box attacks (chapter 7), measured by their queries: :mod:`.evolution` (few-pixel attack by differential
evolution, scores only), :mod:`.estimation` (NES gradient estimates, scores only), :mod:`.decision`
(HopSkipJump, labels only), :mod:`.transfer` (a substitute trained on the target's labels), and
:mod:`.queries` (``QueryCounter`` and the ``ScoresOnly`` / ``LabelsOnly`` views of a model).
"""
from .core import attack_mode, attack_succeeded, input_gradient, project, random_offset, steepest_ascent
from .gradient import bim, bim_steps, fgsm, fgsm_direction, pgd, pgd_with_stats
from .apgd import apgd, apgd_targeted, dlr_loss, targeted_dlr_loss
from .square import square_attack, square_attack_with_stats
from .estimation import nes_attack, nes_attack_with_stats
from .decision import hop_skip_jump, hop_skip_jump_with_stats
from .evolution import pixel_attack, pixel_attack_with_stats
from .queries import LabelsOnly, QueryCounter, ScoresOnly
from .transfer import jacobian_augmentation, oracle_labels, train_substitute
from .carlini_wagner import cw_l2
from .minimal import deepfool, lbfgs_attack
from .sparse import greedy_pixels, one_pixel_exhaustive
from .templates import add_template, follow_local_template, local_templates, unit_max

__all__ = ["LabelsOnly", "QueryCounter", "ScoresOnly", "add_template", "apgd", "apgd_targeted", "attack_mode",
           "attack_succeeded", "bim", "bim_steps", "cw_l2", "deepfool", "dlr_loss", "fgsm", "fgsm_direction",
           "follow_local_template", "greedy_pixels", "hop_skip_jump", "hop_skip_jump_with_stats", "input_gradient",
           "jacobian_augmentation", "lbfgs_attack", "local_templates", "nes_attack", "nes_attack_with_stats",
           "one_pixel_exhaustive", "oracle_labels", "pgd", "pgd_with_stats", "pixel_attack", "pixel_attack_with_stats",
           "project", "random_offset", "square_attack", "square_attack_with_stats", "steepest_ascent",
           "targeted_dlr_loss", "train_substitute", "unit_max"]
