"""AdaBelief (Zhuang et al., NeurIPS 2020) in the small variant Zach, Knoll and Pock (2023) use.

Per parameter p with gradient g, step t (1-based), moments m, s (zero at the start):

    m <- beta1 m + (1 - beta1) g
    s <- beta2 s + (1 - beta2) (g - m)^2 + eps           (eps enters the stored state)
    p <- p - lr / (1 - beta1^t) * m / (sqrt(s / (1 - beta2^t)) + eps)

i.e. Adam with the second moment of the gradient's deviation from its running mean (the
"belief") instead of the raw second moment. The defaults are those of the authors' code
(VLOGroup/stable-deep-mri, optim.py): betas (0.9, 0.999), eps 1e-16, no weight decay, no
rectification, no AMSGrad.

Why not a package: ``adabelief-pytorch`` is unmaintained (its last release predates current
PyTorch and it prints warnings about changed defaults on construction), and its default path
(rectification, decoupled weight decay, eps 1e-12 or 1e-16 depending on the version) is not the
variant the authors trained with. The update is a dozen lines; owning it keeps training
reproducible across PyTorch versions.
"""

from __future__ import annotations

import math

import torch
from torch.optim import Optimizer


class AdaBelief(Optimizer):
    """AdaBelief as above. ``weight_decay`` adds ``weight_decay * p`` to the gradient (L2)."""

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-16, weight_decay: float = 0.0):
        if not lr >= 0.0:
            raise ValueError(f"invalid learning rate {lr}")
        if not eps >= 0.0:
            raise ValueError(f"invalid eps {eps}")
        for index, beta in enumerate(betas):
            if not 0.0 <= beta < 1.0:
                raise ValueError(f"invalid beta{index + 1} {beta}")
        if not weight_decay >= 0.0:
            raise ValueError(f"invalid weight decay {weight_decay}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps,
                                      weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            eps, lr, decay = group["eps"], group["lr"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad
                if grad.is_sparse:
                    raise RuntimeError("AdaBelief does not support sparse gradients")
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_var"] = torch.zeros_like(p,
                                                            memory_format=torch.preserve_format)
                if decay != 0:
                    grad = grad.add(p, alpha=decay)
                state["step"] += 1
                t = state["step"]
                exp_avg, exp_avg_var = state["exp_avg"], state["exp_avg_var"]
                exp_avg.mul_(beta1).add_(grad, alpha=1.0 - beta1)
                deviation = grad - exp_avg
                exp_avg_var.mul_(beta2).addcmul_(deviation, deviation, value=1.0 - beta2)
                exp_avg_var.add_(eps)
                denom = (exp_avg_var.sqrt() / math.sqrt(1.0 - beta2 ** t)).add_(eps)
                p.addcdiv_(exp_avg, denom, value=-lr / (1.0 - beta1 ** t))
        return loss
