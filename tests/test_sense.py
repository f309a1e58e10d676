"""CG-SENSE and the batched conjugate-gradient solver."""

import shutil
import subprocess

import numpy as np
import pytest
import sigpy
import sigpy.mri
import torch

from mrgen.cg import conjugate_gradient
from mrgen.fft import fft2c
from mrgen.linops import SenseOp
from mrgen.sense import sampling_mask, sense_reconstruction

from .conftest import invoke, requires_bart, requires_cuda


def problem(shape=(64, 64), coils=8, accel=3, acs=12, noise=2e-3, seed=0,
            dtype=torch.complex64):
    """Shepp-Logan with a smooth phase, birdcage maps, line-undersampled noisy k-space."""
    height, width = shape
    gen = np.random.default_rng(seed)
    image = sigpy.shepp_logan(shape).astype(np.complex128)
    y, x = np.mgrid[:height, :width]
    image = image * np.exp(1j * (0.5 * np.pi * x / width + 0.3 * np.pi * y / height))
    maps = sigpy.mri.birdcage_maps((coils, height, width), r=1.2)
    maps = maps / np.sqrt((np.abs(maps) ** 2).sum(0))
    mask = np.zeros((height, width))
    mask[:, seed % accel::accel] = 1
    mask[:, width // 2 - acs // 2:width // 2 - acs // 2 + acs] = 1
    kspace = fft2c(torch.from_numpy(maps * image)).numpy()
    kspace += noise * np.abs(kspace).max() / np.sqrt(2) * (
        gen.standard_normal(kspace.shape) + 1j * gen.standard_normal(kspace.shape))
    kspace *= mask
    as_tensor = lambda a, t=dtype: torch.from_numpy(np.ascontiguousarray(a)).to(t)  # noqa: E731
    return (as_tensor(kspace), as_tensor(maps), as_tensor(mask, torch.float64 if dtype ==
                                                          torch.complex128 else torch.float32),
            as_tensor(image))


def dense_solution(kspace, maps, mask, lam):
    """(A^H A + lam I)^-1 A^H y with A built column by column, in float64."""
    op = SenseOp(maps.to(torch.complex128), mask.to(torch.float64))
    height, width = maps.shape[-2:]
    n = height * width
    basis = torch.eye(n, dtype=torch.complex128).reshape(n, height, width)
    matrix = op.forward(basis).reshape(n, -1).T
    normal = matrix.mH @ matrix + lam * torch.eye(n, dtype=torch.complex128)
    rhs = matrix.mH @ kspace.to(torch.complex128).reshape(-1)
    return torch.linalg.solve(normal, rhs).reshape(height, width)


def psnr(image, reference):
    image, reference = np.abs(np.asarray(image)), np.abs(np.asarray(reference))
    mse = np.mean((image - reference) ** 2)
    return 10 * np.log10(reference.max() ** 2 / mse)


@pytest.mark.parametrize("lam", [0.0, 0.01, 0.3])
def test_sense_equals_dense_least_squares(lam):
    kspace, maps, mask, _ = problem(shape=(8, 8), coils=3, accel=2, acs=2,
                                    dtype=torch.complex128)
    reference = dense_solution(kspace, maps, mask, lam)
    image, info = sense_reconstruction(kspace, maps, mask, lam=lam, iters=200, tol=1e-12,
                                       return_info=True)
    assert torch.allclose(image, reference, atol=1e-9 * float(reference.abs().max()))
    assert bool(info.converged) and info.iterations < 200
    single = sense_reconstruction(kspace.to(torch.complex64), maps.to(torch.complex64),
                                  mask.float(), lam=lam, iters=200, tol=1e-7)
    assert single.dtype == torch.complex64
    error = (single.to(torch.complex128) - reference).abs().max() / reference.abs().max()
    assert float(error) < 1e-4


def test_default_mask_is_the_sampling_pattern():
    kspace, maps, mask, _ = problem()
    assert torch.equal(sampling_mask(kspace), mask)
    implicit = sense_reconstruction(kspace, maps)
    explicit = sense_reconstruction(kspace, maps, mask)
    assert torch.allclose(implicit, explicit)


def test_cg_residual_is_small_and_reconstruction_good():
    kspace, maps, mask, image = problem(noise=1e-3)
    x, info = sense_reconstruction(kspace, maps, lam=0.001, iters=100, tol=1e-5,
                                   return_info=True)
    op = SenseOp(maps, mask)
    rhs = op.adjoint(kspace)
    residual = op.normal(x) + 0.001 * x - rhs
    relative = float(torch.linalg.vector_norm(residual) / torch.linalg.vector_norm(rhs))
    assert relative < 3e-5 and float(info.residual) <= 1e-5 and bool(info.converged)
    nrmse = float(torch.linalg.vector_norm(x - image) / torch.linalg.vector_norm(image))
    assert nrmse < 0.05


def test_batched_slices_equal_per_slice():
    slices = [problem(seed=s, noise=1e-3 * (s + 1)) for s in range(3)]
    kspace = torch.stack([s[0] for s in slices])
    maps = torch.stack([s[1] for s in slices])
    mask = torch.stack([s[2] for s in slices])               # a different mask per slice
    batch, info = sense_reconstruction(kspace, maps, mask, iters=40, tol=0,
                                       return_info=True)
    assert batch.shape == (3, 64, 64) and info.residual.shape == (3,)
    for i, (k, m, p, _) in enumerate(slices):
        alone = sense_reconstruction(k, m, p, iters=40, tol=0)
        assert torch.allclose(batch[i], alone, atol=1e-5 * float(alone.abs().max()))


def test_warm_start_from_the_solution_stops_at_once():
    kspace, maps, mask, _ = problem()
    x = sense_reconstruction(kspace, maps, mask, iters=200, tol=1e-6)
    again, info = sense_reconstruction(kspace, maps, mask, iters=200, tol=1e-5, x0=x,
                                       return_info=True)
    assert info.iterations <= 1
    assert torch.allclose(again, x, atol=1e-5 * float(x.abs().max()))


def test_cg_per_element_steps_autograd_and_zero_rhs():
    gen = torch.Generator().manual_seed(0)
    n = 12
    raw = torch.randn(3, n, n, dtype=torch.complex128, generator=gen)
    matrices = raw @ raw.mH + 0.1 * torch.eye(n, dtype=torch.float64)
    matrices[1] *= 100                                         # very different scales
    rhs = torch.randn(3, n, dtype=torch.complex128, generator=gen)
    rhs[2] = 0

    def normal(v):
        return (matrices @ v.unsqueeze(-1)).squeeze(-1)

    lam = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
    x, info = conjugate_gradient(normal, rhs, iters=100, tol=1e-12, lam=lam, batch_dims=1,
                                 return_info=True)
    system = matrices + 0.5 * torch.eye(n, dtype=torch.float64)
    reference = torch.linalg.solve(system, rhs)
    assert torch.allclose(x.detach(), reference, atol=1e-9)
    assert torch.equal(x[2].detach(), torch.zeros(n, dtype=torch.complex128))
    x.abs().square().sum().backward()
    # d/dlam sum |x|^2 = -2 Re x^H (N + lam I)^-1 x
    expected = -2 * (reference.conj() * torch.linalg.solve(system, reference)).sum().real
    assert abs(float(lam.grad) - float(expected)) < 1e-6 * abs(float(expected))
    real = conjugate_gradient(lambda v: v * torch.arange(1.0, 5.0), torch.ones(2, 4),
                              iters=10, batch_dims=1)
    assert torch.allclose(real, 1 / torch.arange(1.0, 5.0).expand(2, 4))


def test_cli_sense(tmp_path):
    kspace, maps, mask, image = problem()
    np.save(tmp_path / "k.npy", kspace.numpy())
    np.save(tmp_path / "sets.npy", torch.stack([maps, maps.flip(-1)]).numpy())  # (sets, C, H, W)
    np.save(tmp_path / "mask.npy", mask[0].numpy())            # (W,): fastMRI's mask
    result = invoke("sense", tmp_path / "k.npy", tmp_path / "sets.npy", tmp_path / "x.npy",
                    "--lam", "0.01", "--iters", "50", "--mask", tmp_path / "mask.npy")
    assert result.exit_code == 0, result.stderr
    assert "CG:" in result.stderr
    x = np.load(tmp_path / "x.npy")
    assert x.shape == (64, 64) and x.dtype == np.complex64
    expected = sense_reconstruction(kspace, maps, mask, lam=0.01, iters=50).numpy()
    assert np.allclose(x, expected, atol=1e-5 * np.abs(expected).max())
    np.save(tmp_path / "k3.npy", torch.stack([kspace, 2 * kspace]).numpy())
    np.save(tmp_path / "m3.npy", torch.stack([maps, maps]).numpy())
    np.save(tmp_path / "init.npy", np.stack([x, 2 * x]))
    result = invoke("sense", tmp_path / "k3.npy", tmp_path / "m3.npy", tmp_path / "y.npy",
                    "--magnitude", "--crop", "32", "32", "--init", tmp_path / "init.npy",
                    "--iters", "50")
    assert result.exit_code == 0, result.stderr
    y = np.load(tmp_path / "y.npy")
    assert y.shape == (2, 32, 32) and y.dtype == np.float32
    assert np.allclose(y[1], 2 * y[0], rtol=1e-3, atol=1e-4 * y.max())
    for bad in (("--lam", "-1"), ("--iters", "0"), ("--crop", "99", "99")):
        result = invoke("sense", tmp_path / "k.npy", tmp_path / "sets.npy", tmp_path / "z.npy",
                        *bad)
        assert result.exit_code == 2 and bad[0] in result.stderr, (bad, result.stderr)
    np.save(tmp_path / "small.npy", maps[:, :32].numpy())
    result = invoke("sense", tmp_path / "k.npy", tmp_path / "small.npy", tmp_path / "z.npy")
    assert result.exit_code == 2 and "small.npy" in result.stderr


@requires_bart
@pytest.mark.bart
def test_same_as_bart_pics_l2(tmp_path):
    from mrgen import io

    kspace, maps, _, image = problem(shape=(64, 48), accel=3, noise=3e-3)
    io.write_array(str(tmp_path / "k.cfl"), kspace.numpy(), io.roles.KSPACE)
    io.write_array(str(tmp_path / "m.cfl"), maps.numpy(), io.roles.MAPS)
    lam = 0.01
    subprocess.run([shutil.which("bart"), "pics", "-l2", "-r", str(lam), "-i", "100", "-S",
                    str(tmp_path / "k"), str(tmp_path / "m"), str(tmp_path / "b")],
                   check=True, capture_output=True)
    bart = io.read_array(str(tmp_path / "b"), io.roles.IMAGE)
    ours = sense_reconstruction(kspace, maps, lam=lam, iters=100, tol=1e-6).numpy()
    assert abs(psnr(ours, image) - psnr(bart, image)) < 0.2
    assert np.linalg.norm(ours - bart) < 0.01 * np.linalg.norm(bart)  # the same image


@requires_cuda
def test_cuda_matches_cpu():
    kspace, maps, mask, _ = problem()
    cpu = sense_reconstruction(kspace, maps, mask, iters=30, tol=0)
    gpu = sense_reconstruction(kspace.cuda(), maps.cuda(), mask.cuda(), iters=30, tol=0)
    assert gpu.device.type == "cuda"
    assert torch.allclose(gpu.cpu(), cpu, atol=1e-4 * float(cpu.abs().max()))
