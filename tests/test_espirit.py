"""ESPIRiT maps: recovery of known maps, BART agreement, calibration detection, the CLI."""

import shutil
import subprocess

import numpy as np
import pytest
import sigpy
import sigpy.mri
import torch

from mrgen import espirit
from mrgen.coils import null_space_residual
from mrgen.fft import fft2c, ifft2c

from .conftest import invoke, requires_bart, requires_cuda


def phantom(coils=8, shape=(64, 64), noise=1e-3, seed=0):
    """Shepp-Logan with a smooth phase, birdcage maps (sum |s|^2 = 1), its k-space."""
    height, width = shape
    image = sigpy.shepp_logan(shape).astype(np.complex128)
    y, x = np.mgrid[:height, :width]
    image = image * np.exp(1j * (0.6 * np.pi * x / width + 0.4 * np.pi * (y / height) ** 2))
    maps = sigpy.mri.birdcage_maps((coils, height, width), r=1.2)
    maps = maps / np.sqrt((np.abs(maps) ** 2).sum(0))
    kspace = fft2c(torch.from_numpy(maps * image))
    gen = np.random.default_rng(seed)
    scale = noise * float(kspace.abs().max()) / np.sqrt(2)
    kspace = kspace + scale * torch.from_numpy(gen.standard_normal(kspace.shape)
                                               + 1j * gen.standard_normal(kspace.shape))
    return (kspace.to(torch.complex64), torch.from_numpy(maps).to(torch.complex64),
            torch.from_numpy(image).to(torch.complex64))


def line_mask(width, acs=24, accel=3):
    mask = np.zeros(width, np.float32)
    mask[::accel] = 1
    mask[width // 2 - acs // 2:width // 2 - acs // 2 + acs] = 1
    return torch.from_numpy(mask)


def undersampled(shape=(64, 64), acs=24, accel=3, **kw):
    kspace, maps, image = phantom(shape=shape, **kw)
    return kspace * line_mask(shape[1], acs, accel), maps, image


def correlation(a, b, support):
    """Per-pixel |<a, b>| / (|a| |b|) over the coil axis, at the support."""
    inner = (a.conj() * b).sum(-3).abs()
    norms = torch.linalg.vector_norm(a, dim=-3) * torch.linalg.vector_norm(b, dim=-3)
    value = torch.where(norms > 0, inner / norms.clamp_min(1e-30), torch.zeros_like(inner))
    return value[support]


def support_of(image, level=0.05):
    return image.abs() > level * image.abs().max()


def test_recovers_known_maps():
    kspace, maps, image = undersampled()
    result = espirit.espirit(kspace)
    assert result.maps.shape == (1, 8, 64, 64) and result.maps.dtype == torch.complex64
    assert result.eigenvalues.shape == (1, 64, 64)
    assert result.calib == (24, 24)
    corr = correlation(result.maps[0], maps, support_of(image))
    assert float(corr.median()) >= 0.999
    assert float(corr.quantile(0.05)) >= 0.95
    values = result.eigenvalues[0][support_of(image)]
    assert float(values.min()) > 0.9 and float(values.max()) <= 1.0 + 1e-4
    norms = torch.linalg.vector_norm(result.maps[0], dim=0)[support_of(image)]
    assert torch.allclose(norms, torch.ones_like(norms), atol=1e-4)


@pytest.mark.parametrize("shape", [(96, 80), (192, 200)])
def test_reduced_grid_matches_exact(shape):
    """The default grid is coarser by 4 per axis where that leaves >= 8 K points (2 here)."""
    kspace, _, image = undersampled(shape=shape)
    factor = espirit.default_factor(shape, (6, 6))
    assert factor == ((2, 1) if shape == (96, 80) else (4, 4))
    exact = espirit.espirit(kspace, factor=1)
    coarse = espirit.espirit(kspace)
    corr = correlation(coarse.maps[0], exact.maps[0], support_of(image))
    assert float(corr.min()) >= 0.9999
    diff = (coarse.eigenvalues - exact.eigenvalues)[0][support_of(image)]
    assert float(diff.abs().max()) < 0.01


def test_power_iteration_matches_eigh():
    kspace, _, image = undersampled(shape=(96, 80))
    exact = espirit.espirit(kspace, factor=1)                    # one set: repeated squaring
    two = espirit.espirit(kspace, sets=2, factor=1)              # batched eigh
    assert two.maps.shape == (2, 8, 96, 80)
    corr = correlation(two.maps[0], exact.maps[0], support_of(image))
    assert float(corr.min()) >= 0.9999
    inside = support_of(image)
    difference = (two.eigenvalues[0] - exact.eigenvalues[0]).abs()
    assert float(difference[inside].max()) < 1e-4
    assert float(difference.max()) < 1e-2       # 64 power steps where l2/l1 > 0.99 outside
    assert bool((two.eigenvalues[1] <= two.eigenvalues[0] + 1e-5).all())


def test_operator_is_the_fft_of_the_kernel_correlation():
    """G at integer pixels = sqrt(HW)/K^2 fft2c(g zero-padded): mrgen's Fourier convention."""
    kspace, _, _ = undersampled(shape=(32, 32))
    calib = espirit.calibration_region(kspace[None], (24, 24))
    basis, _ = espirit.signal_subspace(calib, (6, 6), 0.001)
    g = espirit.kernel_correlation(basis, 8, (6, 6))
    rows, cols = torch.arange(20.0, dtype=torch.float64), torch.arange(17.0, dtype=torch.float64)
    op = espirit.operator_at(g, (6, 6), (20, 17), rows, cols)
    padded = torch.zeros(1, 8, 8, 20, 17, dtype=torch.complex128)
    padded[..., 10 - 5:10 + 6, 8 - 5:8 + 6] = g
    ref = (fft2c(padded) * np.sqrt(20 * 17) / 36).permute(0, 3, 4, 1, 2)
    assert torch.allclose(op.to(torch.complex128), ref, atol=1e-5)
    hermitian = op - op.mH
    assert float(hermitian.abs().max()) < 1e-5


def test_threshold_follows_bart_convention():
    """Kernels kept: sigma_i^2 > threshold * sigma_0^2 (BART ecalib -t)."""
    kspace, _, _ = undersampled(shape=(32, 32))
    calib = espirit.calibration_region(kspace[None], (24, 24))
    windows = calib[0].unfold(-2, 6, 1).unfold(-2, 6, 1).permute(1, 2, 0, 3, 4).reshape(361, -1)
    sigma = torch.linalg.svdvals(windows.to(torch.complex128))
    for threshold in (1e-2, 1e-3, 1e-4):
        _, kept = espirit.signal_subspace(calib, (6, 6), threshold)
        expected = int((sigma ** 2 > threshold * sigma[0] ** 2).sum())
        assert int(kept[0]) == expected


def test_batched_slices_equal_per_slice():
    first, _, _ = undersampled(seed=1)
    second, _, _ = undersampled(seed=2, noise=5e-3)
    batch = espirit.espirit(torch.stack([first, second]), sets=2)
    assert batch.maps.shape == (2, 2, 8, 64, 64) and batch.kernels.shape == (2,)
    for i, kspace in enumerate((first, second)):
        alone = espirit.espirit(kspace, sets=2)
        assert torch.allclose(batch.maps[i], alone.maps, atol=2e-5)
        assert torch.allclose(batch.eigenvalues[i], alone.eigenvalues, atol=2e-5)
        assert int(batch.kernels[i]) == int(alone.kernels)


def test_phase_reference_and_crop():
    kspace, _, image = undersampled()
    first = espirit.espirit(kspace, phase_ref="first", crop=0.0).maps[0]
    inside = support_of(image)
    assert float(first[0].imag[inside].abs().max()) < 1e-4
    assert bool((first[0].real[inside] > 0).all())
    virtual = espirit.espirit(kspace, crop=0.0)
    ref = espirit.principal_component(espirit.calibration_region(kspace[None], (24, 24)))[0]
    projection = torch.einsum("c,chw->hw", ref.conj().to(torch.complex64), virtual.maps[0])
    assert float(projection.imag[inside].abs().max()) < 1e-4
    hard = espirit.espirit(kspace, crop=0.9)
    zero = torch.linalg.vector_norm(hard.maps[0], dim=0) == 0
    assert torch.equal(zero, hard.eigenvalues[0] <= 0.9)
    soft = espirit.espirit(kspace, crop=0.9, soft_crop=True)
    norms = torch.linalg.vector_norm(soft.maps[0], dim=0)
    assert float(norms.max()) <= 1 + 1e-5
    partial = (norms > 1e-3) & (norms < 1 - 1e-3)
    assert bool(partial.any())


def test_find_calibration():
    pattern = torch.zeros(40, 64, dtype=torch.bool)
    pattern[:, ::4] = True
    pattern[:, 32 - 10:32 + 10] = True                    # 20 centre lines, all rows
    assert espirit.find_calibration(pattern, 24) == (24, 20)
    assert espirit.find_calibration(pattern) == (40, 20)
    odd = torch.zeros(40, 64, dtype=torch.bool)
    odd[:, (64 - 13 + 1) // 2:(64 - 13 + 1) // 2 + 13] = True   # fastMRI's 13 centre lines
    assert espirit.find_calibration(odd, 24) == (24, 13)
    square = torch.zeros(64, 64, dtype=torch.bool)
    square[32 - 8:32 + 8, 32 - 8:32 + 8] = True
    square[::2, ::3] = True
    assert espirit.find_calibration(square, 24) == (16, 16)
    hole = square.clone()
    hole[32, 32] = False
    assert espirit.find_calibration(hole, 24) == (0, 0)


def test_more_calibration_lines_leave_less_null_space_residual():
    kspace, _, image = phantom(noise=1e-3)
    coil_images = ifft2c(kspace)
    inside = support_of(image)
    residuals = {}
    for lines in (24, 8):
        masked = kspace * line_mask(64, lines, accel=4)
        maps = espirit.espirit(masked, kernel=6, crop=0.0).maps[0]
        residual = null_space_residual(coil_images, maps)
        residuals[lines] = float(torch.linalg.vector_norm(residual[:, inside])
                                 / torch.linalg.vector_norm(coil_images[:, inside]))
    assert residuals[24] < 0.7 * residuals[8]              # 0.018 vs 0.040
    assert residuals[24] < 0.03


def test_cli_shapes_and_outputs(tmp_path):
    kspace, _, _ = undersampled()
    volume = torch.stack([kspace, kspace * 2])
    np.save(tmp_path / "k.npy", kspace.numpy())
    np.save(tmp_path / "k3.npy", volume.numpy())
    result = invoke("espirit", tmp_path / "k.npy", tmp_path / "maps.npy", "--eigenvalues",
                    tmp_path / "ev.npy")
    assert result.exit_code == 0, result.stderr
    assert "calibration region: 24x24" in result.stderr
    maps = np.load(tmp_path / "maps.npy")
    assert maps.shape == (8, 64, 64) and maps.dtype == np.complex64
    assert np.load(tmp_path / "ev.npy").shape == (64, 64)
    same = espirit.espirit(kspace).maps[0].numpy()
    assert np.allclose(maps, same, atol=1e-6)
    result = invoke("espirit", tmp_path / "k3.npy", tmp_path / "maps3.cfl", "--sets", "2",
                    "--eigenvalues", tmp_path / "ev3.cfl", "--kernel", "5", "--calib", "20x16")
    assert result.exit_code == 0, result.stderr
    assert "calibration region: 20x16 (--calib)" in result.stderr
    header = (tmp_path / "maps3.hdr").read_text().splitlines()[1].split()
    assert header[:5] == ["64", "64", "1", "8", "2"] and header[13] == "2"
    header = (tmp_path / "ev3.hdr").read_text().splitlines()[1].split()
    assert header[:5] == ["64", "64", "1", "1", "2"] and header[13] == "2"
    from mrgen import io

    result = invoke("espirit", tmp_path / "k.npy", tmp_path / "wide.npy", "--calib", "24x30")
    assert result.exit_code == 0, result.stderr              # beyond the 24 ACS lines
    assert "warning: --calib 24x30:" in result.stderr and "not sampled" in result.stderr
    maps3 = io.read_array(str(tmp_path / "maps3"), io.roles.MAPS)
    assert maps3.shape == (2, 2, 8, 64, 64)
    assert np.allclose(maps3[0], maps3[1], atol=1e-5)   # scaling the data changes nothing


def test_cli_missing_calibration_region(tmp_path):
    kspace, _, _ = undersampled()
    kspace[..., 30:34] = 0                                 # no fully sampled centre
    np.save(tmp_path / "k.npy", kspace.numpy())
    result = invoke("espirit", tmp_path / "k.npy", tmp_path / "maps.npy")
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mrgen espirit:")
    assert "sample more centre lines (mrgen mask --center)" in lines[0]
    assert not (tmp_path / "maps.npy").exists()
    good, _, _ = undersampled()
    np.save(tmp_path / "good.npy", good.numpy())
    for bad in (("--calib", "4"), ("--calib", "70x8"), ("--kernel", "0"), ("--sets", "9"),
                ("--eigen-crop", "1.5"), ("--phase-ref", "coil")):
        result = invoke("espirit", tmp_path / "good.npy", tmp_path / "maps.npy", *bad)
        assert result.exit_code == 2, bad
        assert bad[0] in result.stderr, (bad, result.stderr)


@requires_bart
@pytest.mark.bart
def test_agrees_with_bart(tmp_path):
    from mrgen import io

    kspace, _, image = undersampled(shape=(64, 48), noise=2e-3)
    io.write_array(str(tmp_path / "k.cfl"), kspace.numpy(), io.roles.KSPACE)
    subprocess.run([shutil.which("bart"), "ecalib", "-m1", str(tmp_path / "k"),
                    str(tmp_path / "b"), str(tmp_path / "bev")], check=True,
                   capture_output=True)
    bart = torch.from_numpy(io.read_array(str(tmp_path / "b"), io.roles.MAPS))
    bart_values = torch.from_numpy(io.read_array(str(tmp_path / "bev"), io.roles.ANY).real)
    ours = espirit.espirit(kspace)
    corr = correlation(ours.maps[0], bart, support_of(image))
    assert float(corr.median()) >= 0.98
    assert float(corr.median()) >= 0.9999                # in fact the same maps
    inside = support_of(image)
    assert float((ours.eigenvalues[0] - bart_values)[inside].abs().max()) < 0.05


def assert_same_sets(ours, reference, image):
    """Two ESPIRiT results with two sets agree: eigenvalues everywhere; the first set's maps
    on the object; the second set's where both keep it (it is cropped away on most of the
    image, the object included) and its eigenvalue is apart from the first's (where they
    meet, any rotation of the pair is an answer)."""
    assert float((ours.eigenvalues - reference.eigenvalues).abs().max()) < 1e-3
    corr = correlation(ours.maps[0], reference.maps[0], support_of(image))
    assert float(corr.min()) >= 0.999
    values = reference.eigenvalues
    kept = (ours.maps[1].abs().sum(0) > 0) & (reference.maps[1].abs().sum(0) > 0)
    region = kept & (values[0] - values[1] > 0.02)
    assert int(region.sum()) > 10
    assert float(correlation(ours.maps[1], reference.maps[1], region).min()) >= 0.999


def test_two_sets_are_stable():
    """The check of test_cuda_matches_cpu, against k-space perturbed at float32 rounding
    (what another device's summation order does), so that it runs without a GPU too."""
    kspace, _, image = undersampled()
    noise = torch.randn(kspace.shape, dtype=kspace.dtype,
                        generator=torch.Generator().manual_seed(0))
    perturbed = kspace + 1e-7 * kspace.abs().max() * noise * (kspace != 0)
    assert_same_sets(espirit.espirit(perturbed, sets=2), espirit.espirit(kspace, sets=2), image)


@requires_cuda
def test_cuda_matches_cpu():
    kspace, _, image = undersampled()
    cpu = espirit.espirit(kspace, sets=2)
    gpu = espirit.espirit(kspace.cuda(), sets=2)
    assert gpu.maps.device.type == "cuda"
    assert_same_sets(gpu._replace(maps=gpu.maps.cpu(), eigenvalues=gpu.eigenvalues.cpu()),
                     cpu, image)
    one = espirit.espirit(kspace.cuda())
    corr = correlation(one.maps[0].cpu(), cpu.maps[0], support_of(image))
    assert float(corr.min()) >= 0.9999
