"""mrgen.metrics and ``mrgen metrics``: fastMRI PSNR/NMSE/SSIM, MS-SSIM, VIF, normalisation,
cropping, the null-space residual, and the command's table / JSON / errors."""

import json

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter
from scipy.signal import convolve2d
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from typer.testing import CliRunner

from commands.main import app
from mrgen import metrics
from mrgen.errors import DataError
from mrgen.fft import fft2c


def _pair(shape=(3, 48, 40), noise=0.1, seed=0):
    rng = np.random.default_rng(seed)
    gt = gaussian_filter(rng.random(shape), (0, 1.5, 1.5)) + 0.2 * rng.random(shape)
    gt *= np.linspace(0.5, 2.0, shape[0]).reshape(-1, 1, 1)   # slices of different maxima
    pred = gt + noise * gt.std() * rng.standard_normal(shape)
    return gt, pred


# --- fastMRI metrics against skimage / the formulas --------------------------------------------


def test_psnr_ssim_volume_match_skimage_fastmri():
    gt, pred = _pair()
    maxval = gt.max()
    assert metrics.psnr(gt, pred) == pytest.approx(
        peak_signal_noise_ratio(gt, pred, data_range=maxval), abs=1e-4)
    ref_ssim = np.mean([structural_similarity(gt[i], pred[i], data_range=maxval)
                        for i in range(gt.shape[0])])
    assert metrics.ssim(gt, pred) == pytest.approx(ref_ssim, abs=1e-6)
    values = metrics.evaluate(gt, pred, per="volume")
    assert values["psnr"] == pytest.approx(peak_signal_noise_ratio(gt, pred, data_range=maxval),
                                           abs=1e-4)
    assert values["ssim"] == pytest.approx(ref_ssim, abs=1e-6)
    assert values["nmse"] == pytest.approx(
        np.linalg.norm(gt - pred) ** 2 / np.linalg.norm(gt) ** 2, rel=1e-10)
    assert "slices" not in values


def test_per_slice_mode_uses_each_slice_max():
    gt, pred = _pair()
    values = metrics.evaluate(gt, pred, per="slice")
    psnrs = [peak_signal_noise_ratio(g, p, data_range=g.max()) for g, p in zip(gt, pred)]
    ssims = [structural_similarity(g, p, data_range=g.max()) for g, p in zip(gt, pred)]
    nmses = [np.sum((g - p) ** 2) / np.sum(g ** 2) for g, p in zip(gt, pred)]
    assert [s["psnr"] for s in values["slices"]] == pytest.approx(psnrs, abs=1e-4)
    assert [s["ssim"] for s in values["slices"]] == pytest.approx(ssims, abs=1e-6)
    assert [s["nmse"] for s in values["slices"]] == pytest.approx(nmses, rel=1e-10)
    assert values["psnr"] == pytest.approx(np.mean(psnrs), abs=1e-4)
    assert values["ssim"] == pytest.approx(np.mean(ssims), abs=1e-6)
    # a slice with a smaller maximum gets a different PSNR than in volume mode
    assert values["psnr"] != pytest.approx(metrics.psnr(gt, pred), abs=1e-3)


def test_float32_complex_and_2d_inputs():
    gt, pred = _pair((1, 40, 40))
    phase = np.exp(1j * np.random.default_rng(1).uniform(0, 6, gt.shape))
    assert metrics.ssim(gt[0], (pred * phase)[0]) == pytest.approx(
        structural_similarity(gt[0], np.abs(pred[0]), data_range=gt.max()), abs=1e-6)
    g32, p32 = torch.from_numpy(gt.astype(np.float32)), torch.from_numpy(pred.astype(np.float32))
    assert metrics.psnr(g32, p32) == pytest.approx(
        peak_signal_noise_ratio(gt.astype(np.float32), pred.astype(np.float32),
                                data_range=float(gt.astype(np.float32).max())), abs=1e-4)


# --- MS-SSIM ----------------------------------------------------------------------------------


def _ms_ssim_numpy(x, y, data_range, scales):
    """Independent 2D MS-SSIM (scipy 'valid' filtering, numpy pooling)."""
    weights = np.array(metrics.MS_SSIM_WEIGHTS[:scales])
    if scales < 5:   # the published five weights sum to 1.0001 and are used as they are
        weights /= weights.sum()
    t = np.arange(11) - 5
    g1 = np.exp(-t ** 2 / (2 * 1.5 ** 2))
    win = np.outer(g1, g1) / np.sum(np.outer(g1, g1))
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    terms = []
    for j in range(scales):
        if j:
            h, w = x.shape[0] // 2 * 2, x.shape[1] // 2 * 2
            x = x[:h, :w].reshape(h // 2, 2, w // 2, 2).mean((1, 3))
            y = y[:h, :w].reshape(h // 2, 2, w // 2, 2).mean((1, 3))

        def f(z):
            return convolve2d(z, win, mode="valid")

        mx, my = f(x), f(y)
        sxx, syy, sxy = f(x * x) - mx ** 2, f(y * y) - my ** 2, f(x * y) - mx * my
        cs = (2 * sxy + c2) / (sxx + syy + c2)
        lum = (2 * mx * my + c1) / (mx ** 2 + my ** 2 + c1)
        terms.append(cs.mean() if j < scales - 1 else (lum * cs).mean())
    return float(np.prod(np.maximum(terms, 0) ** weights))


def test_ms_ssim_identity_noise_and_reference():
    rng = np.random.default_rng(2)
    gt = gaussian_filter(rng.random((1, 180, 176)), (0, 2, 2))
    assert metrics.ms_ssim_scales(gt.shape) == 5
    assert metrics.ms_ssim(gt, gt) == pytest.approx(1.0, abs=1e-12)
    scores = [metrics.ms_ssim(gt, gt + s * gt.std() * rng.standard_normal(gt.shape))
              for s in (0.1, 0.3, 1.0)]
    assert 1 > scores[0] > scores[1] > scores[2]
    noisy = gt + 0.3 * gt.std() * rng.standard_normal(gt.shape)
    assert metrics.ms_ssim(gt, noisy) == pytest.approx(
        _ms_ssim_numpy(gt[0], noisy[0], gt.max(), 5), abs=1e-8)


def test_ms_ssim_fewer_scales_for_small_images():
    assert metrics.ms_ssim_scales((64, 64)) == 3     # 64 -> 32 -> 16 (11x11 fits) -> 8 (does not)
    assert metrics.ms_ssim_scales((10, 64)) == 0
    weights = metrics.ms_ssim_weights(3)
    assert sum(weights) == pytest.approx(1.0)
    assert weights[1] / weights[0] == pytest.approx(0.2856 / 0.0448)
    gt, pred = _pair((2, 64, 70))
    assert metrics.ms_ssim(gt, pred) == pytest.approx(np.mean(
        [_ms_ssim_numpy(g, p, gt.max(), 3) for g, p in zip(gt, pred)]), abs=1e-8)


# --- VIF --------------------------------------------------------------------------------------


def _vifp_sewar(gt, p, sigma_nsq=2.0):
    """A transcription of sewar.full_ref.vifp (numpy / scipy)."""
    eps = 1e-10
    num = den = 0.0
    for scale in range(1, 5):
        n = 2 ** (4 - scale + 1) + 1
        x, y = np.mgrid[-(n // 2):n // 2 + 1, -(n // 2):n // 2 + 1]
        win = np.exp(-(x ** 2 + y ** 2) / (2 * (n / 5) ** 2))
        win /= win.sum()

        def f(z):
            return convolve2d(z, np.rot90(win, 2), mode="valid")

        if scale > 1:
            gt, p = f(gt)[::2, ::2], f(p)[::2, ::2]
        mu1, mu2 = f(gt), f(p)
        s1 = np.maximum(f(gt * gt) - mu1 ** 2, 0)
        s2 = np.maximum(f(p * p) - mu2 ** 2, 0)
        s12 = f(gt * p) - mu1 * mu2
        g = s12 / (s1 + eps)
        sv = s2 - g * s12
        g[s1 < eps] = 0
        sv[s1 < eps] = s2[s1 < eps]
        s1[s1 < eps] = 0
        g[s2 < eps] = 0
        sv[s2 < eps] = 0
        sv[g < 0] = s2[g < 0]
        g[g < 0] = 0
        sv[sv <= eps] = eps
        num += np.sum(np.log10(1 + g ** 2 * s1 / (sv + sigma_nsq)))
        den += np.sum(np.log10(1 + s1 / sigma_nsq))
    return num / den


def test_vif_identity_noise_blur_and_sewar():
    rng = np.random.default_rng(3)
    gt = gaussian_filter(rng.random((1, 64, 60)), (0, 1.5, 1.5)) * 3.0
    assert metrics.vif(gt, gt) == pytest.approx(1.0, abs=1e-10)
    noisy = [gt + s * gt.std() * rng.standard_normal(gt.shape) for s in (0.1, 0.5)]
    assert 1 > metrics.vif(gt, noisy[0]) > metrics.vif(gt, noisy[1]) > 0
    blurred = gaussian_filter(gt, (0, 2, 2))
    assert 1 > metrics.vif(gt, blurred) > metrics.vif(gt, gaussian_filter(gt, (0, 4, 4)))
    # images are put on a 0..255 scale by data_range first, then vifp as sewar computes it
    assert metrics.vif(gt, noisy[1]) == pytest.approx(
        _vifp_sewar(gt[0] * 255 / gt.max(), noisy[1][0] * 255 / gt.max()), rel=1e-8)
    assert metrics.vif(gt * 1e-4, noisy[1] * 1e-4) == pytest.approx(metrics.vif(gt, noisy[1]),
                                                                    rel=1e-8)
    with pytest.raises(ValueError):
        metrics.vif(gt[:, :40], gt[:, :40])


# --- normalisation, cropping -----------------------------------------------------------------


def test_normalisation_modes():
    gt, pred = _pair()
    pred = 3 * pred + 1
    ref, rec = metrics.normalize(gt, pred, "minmax")
    for image in (ref, rec):
        assert float(image.min()) == pytest.approx(0) and float(image.max()) == pytest.approx(1)
    ref, rec = metrics.normalize(gt, pred, "minmax", per="slice")
    assert torch.allclose(ref.amax(dim=(-2, -1)), torch.ones(3, dtype=torch.float64))
    ref, rec = metrics.normalize(gt, pred, "meanstd")
    assert torch.equal(rec, torch.from_numpy(pred))
    assert float(ref.mean()) == pytest.approx(pred.mean())
    assert float(ref.std(correction=0)) == pytest.approx(pred.std())
    assert torch.allclose(ref, torch.from_numpy((gt - gt.mean()) / gt.std() * pred.std()
                                                + pred.mean()))
    ref, rec = metrics.normalize(gt, pred, "meanstd", per="slice")
    assert torch.allclose(ref.mean(dim=(-2, -1)), torch.from_numpy(pred.mean(axis=(1, 2))))
    ref, rec = metrics.normalize(gt, pred, "meanstd-both")
    for image in (ref, rec):
        assert float(image.mean()) == pytest.approx(0, abs=1e-12)
        assert float(image.std(correction=0)) == pytest.approx(1)
    ref, rec = metrics.normalize(gt, pred, "none")
    assert torch.equal(ref, torch.from_numpy(gt))
    # an affine change of the recon does not matter after min-max normalisation
    assert metrics.evaluate(gt, pred, normalization="minmax")["ssim"] == pytest.approx(
        metrics.evaluate(gt, (pred - 1) / 3 * 7, normalization="minmax")["ssim"])


def test_match_reference_crops_and_rejects():
    ref = torch.rand(2, 10, 8)
    big = torch.zeros(2, 15, 11)
    big[:, 2:12, 1:9] = ref   # fastMRI offsets: (15 - 10) // 2 = 2, (11 - 8) // 2 = 1
    assert torch.equal(metrics.match_reference(ref, big, "big.npy"), ref)
    with pytest.raises(DataError, match="small.npy"):
        metrics.match_reference(ref, torch.rand(2, 9, 8), "small.npy")
    with pytest.raises(DataError, match="slices.npy"):
        metrics.match_reference(ref, torch.rand(3, 10, 8), "slices.npy")


# --- null-space residual ------------------------------------------------------------------------


def _coil_problem(seed=4):
    gen = torch.Generator().manual_seed(seed)
    h, w, coils = 32, 28, 4
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    maps = torch.stack([torch.exp(-((yy - cy) ** 2 + (xx - cx) ** 2)) * torch.exp(1j * k * xx)
                        for k, (cy, cx) in enumerate([(-1, -1), (-1, 1), (1, -1), (1, 1)])])
    image = torch.complex(torch.rand(h, w, generator=gen), torch.rand(h, w, generator=gen))
    assert maps.shape[0] == coils
    return maps.to(torch.complex64), image.to(torch.complex64)


def test_null_space_residual_exact_and_perturbed_maps():
    maps, image = _coil_problem()
    coil_images = maps * image
    exact, residual, fraction = metrics.relative_null_space_residual(coil_images, maps)
    assert exact < 1e-6 and fraction == 1.0
    assert float(residual.abs().max()) < 1e-5
    smoothed = maps.abs().to(torch.complex64)   # phase lost: a poor estimate
    poor, residual, _ = metrics.relative_null_space_residual(coil_images, smoothed)
    assert poor > 0.1 and residual.shape == image.shape
    perturbed = maps * (1 + 0.05 * torch.randn(maps.shape, generator=torch.Generator()
                                                .manual_seed(0)))
    slight, _, _ = metrics.relative_null_space_residual(coil_images, perturbed)
    assert exact < slight < poor
    _, masked, fraction = metrics.relative_null_space_residual(coil_images, smoothed, 0.5)
    assert 0 < fraction < 1 and int((masked == 0).sum()) > 0


# --- the command ------------------------------------------------------------------------------


@pytest.fixture()
def runner():
    try:   # Click < 8.2 mixes stderr into stdout unless told not to; 8.2+ always separates
        return CliRunner(mix_stderr=False)
    except TypeError:
        return CliRunner()


def _files(tmp_path):
    gt, pred = _pair((2, 48, 48))
    big = np.zeros((2, 52, 50))
    big[:, 2:50, 1:49] = gt + 0.05 * gt.std() * np.random.default_rng(9).standard_normal(gt.shape)
    paths = {name: tmp_path / f"{name}.npy" for name in ("gt", "a", "b")}
    for name, array in (("gt", gt), ("a", pred), ("b", big)):
        np.save(paths[name], array.astype(np.float32))
    return paths


def test_cli_table_and_json(runner, tmp_path):
    paths = _files(tmp_path)
    args = ["metrics", str(paths["gt"]), str(paths["a"]), str(paths["b"])]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "PSNR [dB]" in result.stdout and "SSIM" in result.stdout
    assert "a.npy" in result.stdout and "b.npy" in result.stdout
    assert "centre-cropped 52x50 to 48x48" in result.stderr

    result = runner.invoke(app, args + ["--json", "--all", "--quiet"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [r["recon"] for r in rows] == [str(paths["a"]), str(paths["b"])]
    gt = np.load(paths["gt"])
    for row, name in zip(rows, ("a", "b")):
        rec = metrics.match_reference(torch.from_numpy(gt), torch.from_numpy(np.load(paths[name])))
        expected = metrics.evaluate(gt, rec, metrics.METRICS)
        assert set(row) == {"recon", *metrics.METRICS}
        for key in metrics.METRICS:
            assert row[key] == pytest.approx(expected[key], rel=1e-9)
    assert rows[0]["psnr"] == pytest.approx(
        peak_signal_noise_ratio(gt, np.load(paths["a"]), data_range=gt.max()), abs=1e-4)


def test_cli_per_slice_json_and_slice_option(runner, tmp_path):
    paths = _files(tmp_path)
    result = runner.invoke(app, ["metrics", str(paths["gt"]), str(paths["a"]), "--per", "slice",
                                 "--json", "--slice", "1:2", "--normalize", "meanstd"])
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)
    gt, rec = np.load(paths["gt"])[1:2], np.load(paths["a"])[1:2]
    expected = metrics.evaluate(gt, rec, per="slice", normalization="meanstd")
    assert [s["slice"] for s in row["slices"]] == [1]
    assert row["ssim"] == pytest.approx(expected["ssim"], rel=1e-9)
    result = runner.invoke(app, ["metrics", str(paths["gt"]), str(paths["a"]), "--per", "slice",
                                 "--each-slice"])
    assert result.exit_code == 0 and "mean" in result.stdout


def test_cli_mismatch_is_one_line_exit_2(runner, tmp_path):
    paths = _files(tmp_path)
    small = tmp_path / "small.npy"
    np.save(small, np.zeros((2, 40, 48), np.float32))
    result = runner.invoke(app, ["metrics", str(paths["gt"]), str(paths["a"]), str(small)])
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "small.npy" in lines[0] and lines[0].startswith("mrgen metrics:")
    wrong = tmp_path / "wrong.npy"
    np.save(wrong, np.zeros((3, 48, 48), np.float32))
    result = runner.invoke(app, ["metrics", str(paths["gt"]), str(wrong)])
    assert result.exit_code == 2 and "wrong.npy" in result.stderr
    result = runner.invoke(app, ["metrics", str(paths["gt"]), str(paths["a"]),
                                 "--support-threshold", "0.1"])
    assert result.exit_code == 2 and "--null-space" in result.stderr


def test_cli_null_space(runner, tmp_path):
    maps, image = _coil_problem()
    kspace = fft2c(maps * image)
    files = {"k": tmp_path / "k.npy", "good": tmp_path / "good.npy", "poor": tmp_path / "poor.npy"}
    np.save(files["k"], kspace.numpy())
    np.save(files["good"], maps.numpy())
    np.save(files["poor"], maps.abs().to(torch.complex64).numpy())
    result = runner.invoke(app, ["metrics", "--null-space", str(files["k"]), str(files["good"]),
                                 str(files["poor"]), "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert rows[0]["maps"] == str(files["good"]) and rows[0]["relative_residual"] < 1e-5
    expected, _, _ = metrics.relative_null_space_residual(maps * image,
                                                          maps.abs().to(torch.complex64))
    assert rows[1]["relative_residual"] == pytest.approx(expected, rel=1e-4)

    out = tmp_path / "residual.npy"
    result = runner.invoke(app, ["metrics", "--null-space", str(files["k"]), str(files["poor"]),
                                 "--support-threshold", "0.05", "--residual-out", str(out)])
    assert result.exit_code == 0, result.output
    assert "support" in result.stdout
    residual = np.load(out)
    assert residual.shape == (32, 28) and residual.dtype == np.float32 and residual.max() > 0

    result = runner.invoke(app, ["metrics", "--null-space", str(files["k"]), str(files["good"]),
                                 str(files["poor"]), "--residual-out", str(out)])
    assert result.exit_code == 2 and "--residual-out" in result.stderr
    wrong = tmp_path / "wrong.npy"
    np.save(wrong, maps[:3].numpy())
    result = runner.invoke(app, ["metrics", "--null-space", str(files["k"]), str(wrong)])
    assert result.exit_code == 2 and "wrong.npy" in result.stderr
