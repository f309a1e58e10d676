"""Non-Cartesian k-space: trajectories, their files, the NUFFT, its operators and density
compensation (small sizes; the timings are benchmarks/bench_nufft.py)."""

import shutil
import subprocess

import numpy as np
import pytest
import torch

from mrgen import io
from mrgen.density import gridding, pipe_menon
from mrgen.fft import fft2c
from mrgen.io.trajectory import (read_samples, read_trajectory, samples_for_file,
                                 trajectory_for_file)
from mrgen.linops import NufftOp, NufftSenseOp, check_operator
from mrgen.nufft import Nufft, direct_nudft
from mrgen.trajectory import grid_for, radial, spiral

from .conftest import requires_cufinufft

needs_bart = pytest.mark.skipif(shutil.which("bart") is None, reason="needs bart")


def crandn(*shape, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=gen, dtype=torch.complex64)


def cartesian_coords(h, w):
    rows, cols = torch.meshgrid(torch.arange(h) - h // 2, torch.arange(w) - w // 2,
                                indexing="ij")
    return torch.stack([rows, cols], -1).float()


@pytest.mark.bart
@needs_bart
@pytest.mark.parametrize("golden", [False, True])
def test_radial_is_bart_traj(tmp_path, golden):
    """bart traj -r [-G] -x S -y P, read through mrgen.io, is radial(S, P, S)."""
    out = tmp_path / "t"
    subprocess.run(["bart", "traj", "-r", *(["-G"] if golden else []), "-x", "64", "-y", "9",
                    str(out)], check=True, capture_output=True)
    traj = read_trajectory(f"{out}.cfl")
    assert traj.shape == (9, 64, 2)
    # BART accumulates the golden angle in single precision: 1e-3 of 32 cycles/FOV
    assert np.abs(traj - radial(64, 9, 64, golden)).max() < (2e-3 if golden else 1e-4)


@pytest.mark.parametrize("suffix", [".cfl", ".npy"])
def test_trajectory_and_samples_round_trip(tmp_path, suffix):
    traj = radial(16, 5, 8, golden=True)
    path = str(tmp_path / f"t{suffix}")
    array, layout = trajectory_for_file(path, traj)
    io.write_array(path, array, layout=layout)
    assert np.array_equal(read_trajectory(path), traj)
    samples = crandn(2, 3, 5, 16).numpy()
    path = str(tmp_path / f"y{suffix}")
    array, layout = samples_for_file(path, samples)
    io.write_array(path, array, layout=layout)
    assert np.array_equal(read_samples(path), samples)
    assert np.array_equal(read_samples(path, slices=1), samples[1])


@pytest.mark.bart
@needs_bart
def test_samples_file_is_bart_layout(tmp_path):
    """bart nufft of an image on our trajectory file reads back as our forward transform."""
    traj = radial(32, 6, 16)
    array, layout = trajectory_for_file(str(tmp_path / "t.cfl"), traj)
    io.write_array(str(tmp_path / "t.cfl"), array, layout=layout)
    image = crandn(2, 16, 16)
    io.write_array(str(tmp_path / "x.cfl"), image.numpy(), io.roles.COIL_IMAGES)
    subprocess.run(["bart", "nufft", str(tmp_path / "t"), str(tmp_path / "x"),
                    str(tmp_path / "y")], check=True, capture_output=True)
    bart = read_samples(str(tmp_path / "y.cfl"))
    ours = Nufft(torch.from_numpy(traj), (16, 16)).forward(image).numpy()
    assert bart.shape == ours.shape == (2, 6, 32)
    assert np.linalg.norm(bart - ours) / np.linalg.norm(ours) < 0.15   # BART's own accuracy on 16 x 16 (0.08); a wrong axis order gives ~1.4


def test_forward_matches_the_direct_sum():
    """The issue's target: <= 1e-4 relative error at the default tolerance, also odd grids."""
    for grid in ((24, 20), (15, 17)):
        x = crandn(3, *grid)
        coords = torch.from_numpy(radial(40, 13, min(grid)))
        y = Nufft(coords, grid).forward(x)
        reference = direct_nudft(x, coords)
        assert y.shape == (3, 13, 40)
        assert float((y - reference).norm() / reference.norm()) < 1e-4


def test_integer_coordinates_are_fft2c():
    x = crandn(2, 12, 10)
    y = Nufft(cartesian_coords(12, 10), (12, 10)).forward(x)
    assert torch.allclose(y, fft2c(x), atol=1e-5)


def test_operators_are_adjoint_and_toeplitz_is_the_normal():
    nufft = Nufft(torch.from_numpy(spiral(60, 3, 16, turns=4)), (16, 16))
    maps = crandn(2, 4, 16, 16)
    for op in (NufftOp(nufft), NufftSenseOp(maps, nufft), NufftSenseOp(maps, nufft, True)):
        check = check_operator(op, (2, 16, 16))
        assert check.passed, check
        assert check.adjoint_error < 1e-5 and check.normal_error < 1e-5   # float32 precision


def test_gradient_through_the_forward_is_the_adjoint():
    nufft = Nufft(torch.from_numpy(radial(20, 7, 10)), (10, 10))
    x = crandn(10, 10).requires_grad_()
    y = crandn(7, 20, seed=1)
    loss = 0.5 * (nufft.forward(x) - y).abs().square().sum()
    loss.backward()
    expected = nufft.adjoint(nufft.forward(x.detach()) - y)
    assert torch.allclose(x.grad, expected, atol=1e-5)


def test_density_compensation():
    """Radial weights are the areas pi |k| dr / spokes of the samples: each to 2% from |k| = 3
    grid units to 4 short of the edge (measured 1.2%, 0.8% beyond |k| = 4), the centre's in sum
    (0.2%; each within 15%: one kernel width holds them all), the rim's in sum (6%); gridding a
    smooth blob is as accurate as with those areas; a Cartesian grid's weights are 1 away
    from its edges (its corners lie inside the support's threshold, ~0.5)."""
    n, spokes = 64, 120
    traj = radial(2 * n, spokes, n)
    nufft = Nufft(torch.from_numpy(traj), (n, n))
    weights = pipe_menon(nufft).numpy()
    radius = np.linalg.norm(traj, axis=-1)
    area = np.pi * radius * 0.5 / spokes
    error = weights / area - 1
    bulk = (radius > 3) & (radius < radius.max() - 4)
    centre, rim = radius < 2, radius > radius.max() - 4
    assert np.abs(error[bulk]).max() < 0.02
    assert abs(weights[centre].sum() / area[centre].sum() - 1) < 0.005
    assert np.abs(error[centre]).max() < 0.2
    assert abs(weights[rim].sum() / area[rim].sum() - 1) < 0.1
    r = torch.arange(n) - n // 2
    blob = torch.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * 4.0 ** 2)).to(torch.complex64)
    errors = [float((gridding(nufft.forward(blob), nufft, torch.as_tensor(w).float()) - blob)
                    .norm() / blob.norm()) for w in (weights, area)]
    assert errors[0] < 0.02 and errors[0] < errors[1] + 0.003, errors     # 0.0146, 0.0157
    cartesian = pipe_menon(Nufft(cartesian_coords(16, 16), (16, 16)))
    assert torch.allclose(cartesian[3:-3, 3:-3], torch.ones(10, 10), atol=0.01)


def test_grid_for():
    assert grid_for(radial(512, 4, 512)) == (512, 512)
    assert grid_for(radial(512, 4, 256)) == (256, 256)
    assert grid_for(radial(64, 3, 64)) == (64, 64)         # reaches only 27.3 along H
    assert grid_for(radial(256, 5, 256)) == (256, 256)     # 243.5 along H
    assert grid_for(spiral(300, 3, 96)) == (96, 96)


@requires_cufinufft
def test_cuda_matches_cpu():
    coords = torch.from_numpy(radial(40, 9, 16))
    x = crandn(2, 3, 16, 16)
    cpu = Nufft(coords, (16, 16))
    gpu = cpu.to("cuda")
    assert torch.allclose(gpu.forward(x.cuda()).cpu(), cpu.forward(x), atol=1e-4)
    y = cpu.forward(x)
    assert torch.allclose(gpu.adjoint(y.cuda()).cpu(), cpu.adjoint(y), atol=1e-4)
    op = NufftSenseOp(crandn(3, 16, 16).cuda(), gpu)
    assert check_operator(op, (2, 16, 16), device="cuda").passed


def test_cuda_backend_says_why_it_is_missing(monkeypatch):
    """Not installed, or installed without its CUDA libraries: one clear RuntimeFailure each."""
    import importlib.util
    import sys

    from mrgen import nufft as module
    from mrgen.errors import RuntimeFailure

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(RuntimeFailure, match=r"not installed \(pip install cufinufft\)"):
        module._cufinufft()
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: object())
    monkeypatch.setitem(sys.modules, "cufinufft", None)      # its import now fails
    with pytest.raises(RuntimeFailure, match="installed but does not load.*CUDA 12"):
        module._cufinufft()
