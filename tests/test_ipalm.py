"""iPALM (Zach, Knoll, Pock 2023): DST prox, backtracking descent, reconstructions, modes, CLI."""

import numpy as np
import pytest
import torch

from mrgen.dst import dst2, dst2d, idst2, idst2d, smoothness_energy, smoothness_prox
from mrgen.fft import fft2c
from mrgen.ipalm import (IpalmOptions, JointProblem, align_map_phase, backtrack, initialise,
                         ipalm)
from mrgen.masks import make_mask
from mrgen.metrics import psnr
from mrgen.phantom import make_phantom
from mrgen.priors.tv import CharbonnierTV
from mrgen.zerofill import zero_filled

from .conftest import invoke


def dirichlet_laplacian(n):
    """D^T D for differences that vanish half a sample outside the grid: corners 3."""
    lap = 2 * np.eye(n) - np.eye(n, k=1) - np.eye(n, k=-1)
    lap[0, 0] = lap[-1, -1] = 3
    return lap


def test_dst2_matches_scipy_and_inverts():
    import scipy.fft

    x = torch.randn(3, 7, 6, dtype=torch.float64)
    assert np.allclose(dst2(x, -1).numpy(), scipy.fft.dst(x.numpy(), type=2, axis=-1) / 2)
    assert torch.allclose(idst2(dst2(x, -2), -2), x)
    z = torch.randn(2, 5, 8, dtype=torch.complex64)
    assert torch.allclose(idst2(dst2(z)), z, atol=1e-5)
    # Complex data: the real transform of the real and the imaginary part.
    zd = z.to(torch.complex128)
    assert torch.allclose(dst2(zd, -2), torch.complex(dst2(zd.real, -2), dst2(zd.imag, -2)))
    # The 2D transform keeps its coefficients transposed (W, H), at scipy's scale (2 dst2 per
    # axis), and inverts exactly; scipy's path (CPU, no autograd) and torch's agree.
    assert torch.allclose(dst2d(zd), 4 * dst2(dst2(zd, -1), -2).transpose(-1, -2))
    assert torch.allclose(idst2d(dst2d(zd)), zd)
    tracked = zd.clone().requires_grad_()  # autograd: torch's path
    assert torch.allclose(dst2d(tracked).detach(), dst2d(zd))
    assert torch.allclose(idst2d(dst2d(tracked)).detach(), zd)


@pytest.mark.parametrize("h,w,weight", [(6, 5, 0.7), (9, 4, 20.0)])
def test_smoothness_prox_solves_its_linear_system(h, w, weight):
    """prox = (I + weight D^T D)^-1 y with zero-boundary differences, by a dense solve."""
    y = torch.randn(2, h, w, dtype=torch.complex128)
    lap = np.kron(dirichlet_laplacian(h), np.eye(w)) + np.kron(np.eye(h), dirichlet_laplacian(w))
    dense = np.linalg.solve(np.eye(h * w) + weight * lap, y.reshape(2, -1).numpy().T).T
    assert np.allclose(smoothness_prox(y, weight).numpy(), dense.reshape(2, h, w))
    # The energy F it pairs with is 1/2 <x, D^T D x>.
    x = y[0].numpy().ravel()
    assert smoothness_energy(y[:1]).item() == pytest.approx(0.5 * np.vdot(x, lap @ x).real)


@pytest.fixture(scope="module")
def brain():
    ph = make_phantom("shepp-logan", size=(64, 64), coils=4, noise=0.002, seed=1)
    mask = torch.from_numpy(make_mask("random-exact:3:0.12", (64, 64), seed=3))
    return torch.from_numpy(ph.kspace), mask, torch.from_numpy(ph.rss), ph


def test_backtracking_never_increases_the_energy(brain):
    kspace, mask, _, _ = brain
    options = IpalmOptions(lam=1000.0, mu=1000.0, slack=1.0)
    u, c, scale = initialise(kspace, mask[None])
    problem = JointProblem(kspace / scale.view(-1, 1, 1, 1), mask[None], CharbonnierTV(), 1000.0)
    generator = torch.Generator().manual_seed(0)
    for trial in range(3):
        u_start = (u + 0.05 * torch.rand(u.shape, generator=generator)).clamp_min(0)
        e0, grad = problem.grad_image(u_start, c)
        u_new, e_new, _, _ = backtrack(lambda x: problem.energy(x, c),
                                       lambda lip: ((u_start - grad / lip).clamp_min(0), None),
                                       u_start, e0, grad, torch.ones(1, dtype=u.dtype), options)
        assert (e_new <= e0).all() and (u_new >= 0).all()

        prior = problem.prior(u_new)
        d0, grad_c = problem.grad_maps(u_new, c)
        c_new, e_c, _, _ = backtrack(
            lambda x: problem.energy(u_new, x, prior),
            lambda lip: (smoothness_prox(c - grad_c / lip, options.mu / lip.view(-1, 1, 1, 1)),
                         None),
            c, d0 + prior, grad_c, torch.ones(1, dtype=u.dtype), options)
        total_before = d0 + prior + options.mu * smoothness_energy(c)
        total_after = e_c + options.mu * smoothness_energy(c_new)
        assert (total_after <= total_before * (1 + 1e-6)).all()
        u, c = u_new, c_new


def test_data_gradients_match_autograd(brain):
    """The hand-written gradients of the data term (image and maps, through the maps'
    normalisation) agree with autograd of the data term."""
    from mrgen.priors.energy import energy_and_grad

    kspace, mask, _, _ = brain
    u, c, scale = initialise(kspace, mask[None])
    problem = JointProblem(kspace / scale.view(-1, 1, 1, 1), mask[None], CharbonnierTV(), 30.0)
    generator = torch.Generator().manual_seed(1)
    c = c + 0.1 * torch.randn(c.shape, generator=generator, dtype=c.dtype)
    u = u + 0.05 * torch.rand(u.shape, generator=generator)
    _, grad_u = problem.grad_image(u, c)
    _, reference_u = energy_and_grad(lambda x: problem.data(x, c) + problem.prior(x), u)
    assert torch.allclose(grad_u, reference_u, rtol=1e-4, atol=1e-4 * reference_u.abs().max())
    data, grad_c = problem.grad_maps(u, c)
    reference_data, reference_c = energy_and_grad(lambda x: problem.data(u, x), c)
    assert torch.allclose(data, reference_data, rtol=1e-5)
    assert torch.allclose(grad_c, reference_c, rtol=1e-4, atol=1e-4 * reference_c.abs().max())


def random_mask(kind, shape, gen):
    """(2, H, W) float64 masks: "2d" random points, "columns" or "rows" (constant along H or
    W: ipalm's line path), "weights" (columns of weights in (0, 1], not binary)."""
    if kind == "2d":
        return (torch.rand(2, *shape, generator=gen, dtype=torch.float64) > 0.5).double()
    length = shape[0] if kind == "rows" else shape[1]
    line = (torch.rand(2, length, generator=gen, dtype=torch.float64) > 0.5).double()
    if kind == "weights":
        line = line * torch.rand(2, length, generator=gen, dtype=torch.float64).add(0.1)
    if kind == "rows":
        return line[:, :, None].expand(2, *shape).clone()
    return line[:, None, :].expand(2, *shape).clone()


@pytest.mark.parametrize("kind", ["2d", "columns", "rows", "weights"])
@pytest.mark.parametrize("shape", [(16, 12), (15, 12), (15, 13), (16, 13)])
def test_data_term_matches_its_centred_definition(shape, kind):
    """JointProblem's data term and hand-written gradients against the definition
    lam/2 sum_c ||M fft2c(u c/|c|) - z||^2 and autograd, in float64, for even and odd sizes
    (fft2c takes another path for odd sizes), and for masks constant along an axis (the
    transform along the other axis alone, in hybrid space), binary or not."""
    from mrgen.ipalm import _CoilFourier, _LineFourier
    from mrgen.priors.energy import energy_and_grad

    gen = torch.Generator().manual_seed(2)
    z = torch.randn(2, 3, *shape, dtype=torch.complex128, generator=gen)
    mask = random_mask(kind, shape, gen)
    u = torch.rand(2, *shape, generator=gen, dtype=torch.float64)
    c = torch.randn(2, 3, *shape, dtype=torch.complex128, generator=gen)
    problem = JointProblem(z, mask, CharbonnierTV(), 7.0)
    assert isinstance(problem.fourier, _CoilFourier if kind == "2d" else _LineFourier)

    def direct(u, c):
        unit = c / torch.sqrt((c.abs() ** 2).sum(1, keepdim=True) + 1e-12)
        r = mask[:, None] * fft2c(u[:, None] * unit) - z * mask[:, None]
        return 3.5 * (r.abs() ** 2).flatten(1).sum(1)

    assert torch.allclose(problem.data(u, c), direct(u, c))
    _, grad_u = problem.grad_image(u, c)
    _, reference_u = energy_and_grad(lambda x: direct(x, c) + CharbonnierTV()(x), u)
    assert torch.allclose(grad_u, reference_u)
    _, grad_c = problem.grad_maps(u, c)
    assert torch.allclose(grad_c, energy_and_grad(lambda x: direct(u, x), c)[1])


def test_ipalm_tv_beats_zero_filling(brain):
    kspace, mask, reference, _ = brain
    result = ipalm(kspace, mask[None], CharbonnierTV(), IpalmOptions(lam=1000, mu=1000, iters=40))
    zf = zero_filled(kspace, mask[None])
    assert psnr(reference, result.image) > psnr(reference, zf) + 3
    assert result.energies[-1] < result.energies[0]
    assert torch.allclose(torch.sum(result.maps.abs() ** 2, 1), torch.ones(1), atol=1e-3)


def test_fixed_true_maps_and_batches_match_single_slices(brain):
    kspace, mask, reference, ph = brain
    maps = torch.from_numpy(np.array(ph.maps))
    options = IpalmOptions(lam=1000, mu=1000, iters=15, estimate_maps=False)
    single = ipalm(kspace, mask[None], CharbonnierTV(), options, maps=maps)
    batch = ipalm(kspace.repeat(2, 1, 1, 1), mask[None], CharbonnierTV(), options,
                  maps=maps.repeat(2, 1, 1, 1))
    assert torch.allclose(batch.image[1], single.image[0], atol=1e-5)
    # The given maps come back normalised, times the image phase they were aligned to.
    aligned = align_map_phase(kspace, mask[None], maps)
    assert torch.allclose(single.maps, aligned / torch.sqrt((aligned.abs() ** 2).sum(
        1, keepdim=True) + 1e-12), atol=1e-6)
    assert psnr(reference, single.image) > psnr(reference, zero_filled(kspace, mask[None])) + 3


def test_single_coil_real_valued_study():
    """C = 1, sigma = 1: real image, k-space of the image itself (Zach, Knoll, Pock 2023, preprint, Section 2.5)."""
    ph = make_phantom("shepp-logan", size=(64, 64), coils=1, phase=0.0, seed=2)
    truth = torch.from_numpy(np.abs(ph.image))
    kspace = fft2c(truth.to(torch.complex64))
    mask = torch.from_numpy(make_mask("random-exact:3:0.12", (64, 64), seed=5))
    options = IpalmOptions(lam=1000, mu=1.0, iters=40, estimate_maps=False)
    result = ipalm(kspace, mask[None], CharbonnierTV(), options,
                   maps=torch.ones_like(kspace))
    zf = zero_filled(kspace, mask[None])
    assert psnr(truth, result.image) > psnr(truth, zf) + 3
    assert (result.image >= 0).all()


def test_cli_ipalm_with_outputs(tmp_path):
    assert invoke("phantom", "--size", 48, 48, "--coils", 4, tmp_path / "d.h5").exit_code == 0
    assert invoke("mask", "--like", tmp_path / "d.h5", "--kind", "random-exact", "--accel", 3,
                  tmp_path / "m.npy").exit_code == 0
    result = invoke("ipalm", "--mask", tmp_path / "m.npy", "--iters", 10, "--maps-out",
                    tmp_path / "maps.npy", "--energy-log", tmp_path / "e.txt",
                    tmp_path / "d.h5", tmp_path / "u.npy")
    assert result.exit_code == 0, result.stderr
    assert np.load(tmp_path / "u.npy").shape == (48, 48)
    assert np.load(tmp_path / "maps.npy").shape == (4, 48, 48)
    assert np.loadtxt(tmp_path / "e.txt").shape == (10,)
    bad = invoke("ipalm", "--lam", "auto", tmp_path / "d.h5", tmp_path / "v.npy")
    assert bad.exit_code == 2 and "--lam auto" in bad.stderr


def reference_ipalm(kspace, mask, options):
    """Algorithms 1 and 2 written out plainly, for one slice: the data term by its definition,
    every gradient by autograd, the maps' prox by smoothness_prox in image space, each
    backtracking try evaluated from scratch. The optimised ipalm must give the same
    iterates."""
    from mrgen.dst import smoothness_energy
    from mrgen.priors.energy import energy_and_grad

    u, c, scale = initialise(kspace, mask)
    z = kspace / scale.view(-1, 1, 1, 1) * mask[:, None]
    tv = CharbonnierTV()

    def data(u, c):
        unit = c / torch.sqrt((c.abs() ** 2).sum(1, keepdim=True) + 1e-12)
        residual = mask[:, None] * fft2c(u[:, None] * unit) - z
        return 0.5 * options.lam * (residual.abs() ** 2).flatten(1).sum(1)

    def step(x_bar, energy_bar, grad, lip, prox, energy):
        for _ in range(options.max_backtracks):
            x = prox(lip)
            d = x - x_bar
            bound = energy_bar + (grad.conj() * d).real.sum() + 0.5 * lip * (d.abs() ** 2).sum()
            value = energy(x)
            if value <= bound * options.slack:
                break
            lip = 2 * lip
        return x, value, lip

    lip_u = lip_c = 1.0
    u_old, c_old, energies = u, c, []
    for k in range(options.iters):
        beta = k / (k + 3)
        u_bar = u + beta * (u - u_old)
        energy_bar, grad_u = energy_and_grad(lambda x: data(x, c) + tv(x), u_bar)
        u_old = u
        u, _, lip_u = step(u_bar, energy_bar, grad_u, lip_u,
                           lambda lip: (u_bar - grad_u / lip).clamp_min(0),
                           lambda x: data(x, c) + tv(x))
        lip_u = lip_u / options.shrink
        c_bar = c + beta * (c - c_old)
        data_bar, grad_c = energy_and_grad(lambda x: data(u, x), c_bar)
        c_old = c
        c, energy, lip_c = step(c_bar, data_bar + tv(u), grad_c, lip_c,
                                lambda lip: smoothness_prox(c_bar - grad_c / lip,
                                                            options.mu / lip),
                                lambda x: data(u, x) + tv(u))
        lip_c = max(lip_c / options.shrink, options.min_lipschitz_maps)
        energies.append(energy + options.mu * smoothness_energy(c))
    unit = c / torch.sqrt((c.abs() ** 2).sum(1, keepdim=True) + 1e-12)
    return u * scale.view(-1, 1, 1), unit, torch.stack(energies)


@pytest.mark.parametrize("shape,spec", [((32, 24), "random-exact:2:0.2"),
                                        ((31, 24), "random-exact:2:0.2"),
                                        ((32, 23), "random:2:0.2"),
                                        ((32, 24), "poisson:2"), ((31, 24), "poisson:2")])
def test_optimised_ipalm_equals_the_plain_algorithm(shape, spec):
    """ipalm's fused iteration (maps in the DST basis, the FFT's checkerboard folded into
    maps and data, cached unit maps, closed-form TV gradient, BLAS inner products) computes
    the iterates of the plain algorithm: in float64 they agree to rounding, for even sizes
    (the folded checkerboard) and odd ones (fft2c's shifts), with line masks (1D FFTs in
    hybrid space) and 2D ones."""
    ph = make_phantom("shepp-logan", size=shape, coils=3, noise=0.002, seed=4)
    mask = torch.from_numpy(make_mask(spec, shape, seed=2)).double()[None]
    kspace = torch.from_numpy(ph.kspace).to(torch.complex128) * mask
    options = IpalmOptions(lam=300.0, mu=300.0, iters=12)
    result = ipalm(kspace, mask, CharbonnierTV(), options)
    image, maps, energies = reference_ipalm(kspace, mask, options)
    assert result.image.dtype == torch.float64
    assert torch.allclose(result.image, image, rtol=0, atol=1e-9 * image.max())
    assert torch.allclose(result.maps, maps, rtol=0, atol=1e-9)
    assert torch.allclose(result.energies[:, 0], energies[:, 0], rtol=1e-10)


def test_line_path_equals_the_2d_path_in_float32(brain, monkeypatch):
    """A column mask's hybrid-space iteration and the 2D FFT's give the same reconstruction
    to float32 rounding."""
    import mrgen.ipalm as module

    kspace, mask, _, _ = brain
    options = IpalmOptions(lam=1000, mu=1000, iters=15)
    line = ipalm(kspace, mask[None], CharbonnierTV(), options)
    monkeypatch.setattr(module, "coil_fourier", module._CoilFourier)
    plane = ipalm(kspace, mask[None], CharbonnierTV(), options)
    assert torch.allclose(line.image, plane.image, rtol=0, atol=1e-4 * plane.image.max())
    assert torch.allclose(line.maps, plane.maps, rtol=0, atol=1e-4)
    assert torch.allclose(line.energies, plane.energies, rtol=1e-5)


def test_closed_form_tv_gradient_equals_autograd():
    from mrgen.priors.energy import energy_and_grad

    images = torch.rand(2, 13, 10, dtype=torch.float64)
    tv = CharbonnierTV(eps=1e-2)
    energy, grad = tv.energy_and_grad(images)
    reference_energy, reference_grad = energy_and_grad(tv, images)
    assert torch.allclose(energy, reference_energy, rtol=1e-14)
    assert torch.allclose(grad, reference_grad, rtol=0, atol=1e-13)


def test_map_smoothness_by_default_is_a_ratio_to_each_slices_lambda():
    """mu None: each slice's mu is mu_per_lambda times its own lam, so a batch of slices with
    their own lambdas solves each slice as a run with that mu given."""
    from mrgen.ipalm import map_smoothness

    like = torch.zeros(1, dtype=torch.float64)
    ratio = IpalmOptions(lam=torch.tensor([300.0, 1000.0]), mu=None, mu_per_lambda=3.0)
    assert map_smoothness(ratio, 2, like).tolist() == [900.0, 3000.0]
    assert map_smoothness(IpalmOptions(lam=5.0, mu=None, mu_per_lambda=2.0), 3, like).tolist() \
        == [10.0] * 3
    assert map_smoothness(IpalmOptions(lam=5.0, mu=7.0), 2, like).tolist() == [7.0, 7.0]
    ph = make_phantom("shepp-logan", size=(32, 24), coils=3, noise=0.002, seed=4)
    mask = torch.from_numpy(make_mask("random-exact:2:0.2", (32, 24), seed=2)).double()[None]
    kspace = (torch.from_numpy(ph.kspace).to(torch.complex128) * mask).repeat(2, 1, 1, 1)
    batch = ipalm(kspace, mask, CharbonnierTV(), IpalmOptions(
        lam=torch.tensor([300.0, 1000.0]), mu=None, mu_per_lambda=3.0, iters=12))
    for index, (lam, mu) in enumerate([(300.0, 900.0), (1000.0, 3000.0)]):
        alone = ipalm(kspace[:1], mask, CharbonnierTV(), IpalmOptions(lam=lam, mu=mu, iters=12))
        assert torch.allclose(batch.image[index], alone.image[0], rtol=0,
                              atol=1e-9 * float(alone.image.max()))
        assert torch.allclose(batch.energies[:, index], alone.energies[:, 0], rtol=1e-10)
