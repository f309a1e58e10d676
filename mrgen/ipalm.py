"""Joint reconstruction of image and coil maps by iPALM (papers 000/001, Algorithms 1 and 2).

Minimises H(u, c) + delta_{u >= 0}(u) + mu F(c) over a real, non-negative image u and coil
maps c (Eq. 10), where, as in the authors' code,

    H(u, c) = lam/2 * sum_c ||M F(u * c / |c|) - z_c||^2 + R(u)

(lam weights the data term; the paper writes it on R — the two differ by a scale of H) and
F is the Dirichlet smoothness of the maps (Eq. 12), whose prox is exact in the DST-II basis
(Eq. 14; mrgen.dst says where the boundary sits). The division by the coil-wise root-sum-of-squares |c| (Eq. 9, 11) makes the maps
implicitly normalised. Each block takes a proximal gradient step whose Lipschitz constant is
found by backtracking (Algorithm 2), with inertia k/(k+3) (Algorithm 1).

Details from the authors' code: L_u = L_c = 1 at the start; each failed backtracking try
doubles L for the slices that fail (the paper repeats until the test passes; the code stops
after 10 tries, which from L = 1 lets the first steps break the test and raise the energy, so
the default here is 40 tries, enough for any L that float32 can express); the sufficient-decrease bound carries a
1.01 slack (``slack=1.0`` gives the paper's exact test); after each iteration L /= 1.5, and
L_c >= 0.5. Data are scaled by the maximum of the initial RSS image (within the prior's crop)
and the result is scaled back. Slices are independent problems solved as one batch, each
with its own Lipschitz constants.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .coils import rss
from .dst import smoothness_prox
from .fft import fft2c, ifft2c
from .priors.energy import energy_and_grad
from .resize import center_crop

_TINY = 1e-12


@dataclass
class IpalmOptions:
    lam: float = 1.0                 # weight of the data term
    mu: float = 10.0                 # weight of the map smoothness
    iters: int = 100
    estimate_maps: bool = True       # False: the maps stay as given (fixed-map mode)
    max_backtracks: int = 40         # the paper loops until success; the code stops at 10
    slack: float = 1.01
    shrink: float = 1.5
    min_lipschitz_maps: float = 0.5
    scale_crop: int | None = None    # normalise by the max of the initial RSS in this crop


@dataclass
class IpalmResult:
    image: torch.Tensor              # (B, H, W) real, non-negative, in the data's scale
    maps: torch.Tensor               # (B, C, H, W) normalised to unit root-sum-of-squares
    energies: torch.Tensor           # (iters, B): H(u, c) + mu F(c) after each iteration
    scale: torch.Tensor              # (B,) the normalisation applied to the data
    initial_residual: torch.Tensor   # (B,) sum_c ||F_M(c0 u0) - z||^2 of the normalised data
    lipschitz: dict = field(default_factory=dict)


def _abs2(x: torch.Tensor) -> torch.Tensor:
    """|x|^2 without the square root that abs() takes (a third of the data term's time)."""
    return torch.view_as_real(x).square().sum(-1) if x.is_complex() else x.square()


def _inner(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Real inner product per batch element: Re <a, b> summed over all but the first axis."""
    if a.is_complex():
        return (torch.view_as_real(a) * torch.view_as_real(b)).flatten(1).sum(1)
    return (a * b).flatten(1).sum(1)


def _expand(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return values.view(-1, *([1] * (like.dim() - 1)))


class JointProblem:
    """The energy H(u, c) for a batch of slices, with its partial gradients."""

    def __init__(self, kspace, mask, regulariser, lam):
        self.z = kspace * mask.unsqueeze(-3)
        self.mask = mask.unsqueeze(-3)
        self.regulariser = regulariser
        self.lam = lam

    def data(self, u, c):
        normalised = c / torch.sqrt(_abs2(c).sum(dim=-3, keepdim=True) + _TINY)
        residual = self.mask * fft2c(u.unsqueeze(-3) * normalised) - self.z
        return 0.5 * self.lam * _abs2(residual).flatten(1).sum(1)

    def prior(self, u):
        return self.regulariser(u)

    def energy(self, u, c, prior=None):
        with torch.no_grad():
            return self.data(u, c) + (self.prior(u) if prior is None else prior)

    def grad_image(self, u, c):
        prior, prior_grad = energy_and_grad(self.regulariser, u)
        data, data_grad = energy_and_grad(lambda x: self.data(x, c), u)
        return data + prior, data_grad + prior_grad

    def grad_maps(self, u, c):
        return energy_and_grad(lambda x: self.data(u, x), c)


def initialise(kspace, mask, scale_crop=None):
    """Eq. 15 on the scaled data: u0 = RSS of the zero-filled coil images, c0 = coils / u0."""
    coil_images = ifft2c(kspace * mask.unsqueeze(-3))
    u0 = rss(coil_images)
    region = u0 if scale_crop is None else center_crop(u0, (min(scale_crop, u0.shape[-2]),
                                                             min(scale_crop, u0.shape[-1])))
    scale = region.flatten(1).amax(1).clamp_min(_TINY)
    u0 = u0 / _expand(scale, u0)
    c0 = coil_images / _expand(scale, coil_images) / (u0.unsqueeze(-3) + _TINY)
    return u0, c0, scale


def backtrack(energy_fn, prox, x_bar, energy_bar, grad, lipschitz, options):
    """Algorithm 2: a proximal gradient step from x_bar whose L satisfies sufficient decrease.

    Returns the new point, its energy and the (per-slice) L before the final shrink.
    """
    for _ in range(options.max_backtracks):
        x = prox(x_bar - grad / _expand(lipschitz, grad), lipschitz)
        step = x - x_bar
        bound = (energy_bar + _inner(grad, step) + 0.5 * lipschitz * _inner(step, step)) \
            * options.slack
        energy = energy_fn(x)
        accepted = energy <= bound
        if bool(accepted.all()):
            break
        lipschitz = torch.where(accepted, lipschitz, 2 * lipschitz)
    return x, energy, lipschitz


def ipalm(kspace: torch.Tensor, mask: torch.Tensor, regulariser, options: IpalmOptions,
          maps: torch.Tensor | None = None, callback=None) -> IpalmResult:
    """Algorithm 1 on k-space (B, C, H, W) with masks (B or 1, H, W).

    ``regulariser`` maps real images (B, H, W) to energies (B,). ``maps`` (B, C, H, W), when
    given, replace the initial maps of Eq. 15 (and stay fixed unless options.estimate_maps).
    ``callback(k, u, c, energies)`` is called after each iteration.
    """
    mask = mask.expand(kspace.shape[0], *mask.shape[-2:]).to(kspace.real.dtype)
    u, c, scale = initialise(kspace, mask, options.scale_crop)
    if maps is not None:
        c = maps.to(kspace.dtype)
    z = kspace / _expand(scale, kspace)
    problem = JointProblem(z, mask, regulariser, options.lam)
    residual0 = problem.data(u, c) * 2 / options.lam

    batch = kspace.shape[0]
    lip_u = torch.ones(batch, device=u.device, dtype=u.dtype)
    lip_c = torch.ones(batch, device=u.device, dtype=u.dtype)
    u_old, c_old = u.clone(), c.clone()
    smoothness = _map_smoothness(options.mu)
    energies = []
    for k in range(options.iters):
        beta = k / (k + 3)

        u_bar = u + beta * (u - u_old)
        energy_bar, grad_u = problem.grad_image(u_bar, c)
        u_old = u
        u, energy, lip_u = backtrack(lambda x: problem.energy(x, c), lambda x, _: x.clamp_min(0),
                                     u_bar, energy_bar, grad_u, lip_u, options)
        lip_u = lip_u / options.shrink

        if options.estimate_maps:
            prior_u = problem.prior(u).detach()  # constant while the maps move
            c_bar = c + beta * (c - c_old)
            data_bar, grad_c = problem.grad_maps(u, c_bar)
            c_old = c
            c, energy, lip_c = backtrack(
                lambda x: problem.energy(u, x, prior_u),
                lambda x, lip: smoothness_prox(x, _expand(options.mu / lip, x)),
                c_bar, data_bar + prior_u, grad_c, lip_c, options)
            lip_c = (lip_c / options.shrink).clamp_min(options.min_lipschitz_maps)
        total = energy + smoothness(c)
        energies.append(total)
        if callback is not None:
            callback(k, u, c, total)

    normalised_maps = c / torch.sqrt(torch.sum(c.abs() ** 2, dim=-3, keepdim=True) + _TINY)
    return IpalmResult(image=u.detach() * _expand(scale, u), maps=normalised_maps.detach(),
                       energies=torch.stack(energies) if energies else torch.empty(0, batch),
                       scale=scale, initial_residual=residual0.detach(),
                       lipschitz={"image": lip_u, "maps": lip_c})


def _map_smoothness(mu):
    from .dst import smoothness_energy

    return lambda c: mu * smoothness_energy(c)


def initial_residual(kspace: torch.Tensor, mask: torch.Tensor, scale_crop=None) -> torch.Tensor:
    """r0 of paper 001, Section 2.6: sum_c ||F_M(c0 u0) - z_c||^2 on the scaled data, (B,).

    For Cartesian masks F_M F_M^* is a projection, so r0 is zero up to rounding; it carries
    information for non-Cartesian data, and the lambda fit falls back to its intercept here.
    """
    mask = mask.expand(kspace.shape[0], *mask.shape[-2:]).to(kspace.real.dtype)
    u0, c0, scale = initialise(kspace, mask, scale_crop)
    problem = JointProblem(kspace / _expand(scale, kspace), mask, None, 1.0)
    return problem.data(u0, c0) * 2
