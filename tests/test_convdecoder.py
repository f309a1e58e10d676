"""mrgen convdecoder: un-trained network reconstruction (Darestani, Heckel 2021).

Small problems only (32x32 and 64x64, 4 coils, small networks, at most 300 iterations).
The fits run with one intra-op thread: for networks this small more threads do not help, and
on a shared CPU they make the fits many times slower.
"""

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import commands.main  # noqa: F401  (the app with every registered command)

from commands.cli import app
from mrgen.coils import rss
from mrgen.fft import fft2c, ifft2c
from mrgen.untrained import (ConvDecoder, build_generator, count_parameters, data_consistency,
                             derive_seed, fit_untrained, layer_sizes, sampling_pattern)
from mrgen.untrained.architectures import DIP_INPUT_CHANNELS, SKIP_CHANNELS

from .conftest import requires_cuda

TINY = ["--layers", "3", "--channels", "8", "--input-size", "4", "4", "--iters", "30"]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make_phantom(n=64, coils=4, accel=3.0, seed=0):
    """Shepp-Logan with birdcage maps (sum |s|^2 = 1): full k-space, a 1D random column mask
    with a fully sampled centre, the maps and the ground-truth RSS image."""
    import sigpy
    import sigpy.mri

    image = sigpy.shepp_logan((n, n)).astype(np.complex64)
    maps = sigpy.mri.birdcage_maps((coils, n, n)).astype(np.complex64)
    maps /= np.sqrt((np.abs(maps) ** 2).sum(axis=0, keepdims=True))
    coil_images = torch.from_numpy(maps * image)
    kspace = fft2c(coil_images)
    rng = np.random.default_rng(seed)
    centre = max(2, round(0.08 * n))
    columns = rng.random(n) < (n / accel - centre) / (n - centre)
    start = (n - centre + 1) // 2
    columns[start:start + centre] = True
    mask = torch.from_numpy(np.broadcast_to(columns, (n, n)).astype(np.float32).copy())
    return kspace, mask, torch.from_numpy(maps), rss(coil_images)


def psnr(reference, image):
    reference, image = reference.double(), image.abs().double()
    return float(10 * torch.log10(reference.max() ** 2 / ((reference - image) ** 2).mean()))


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


# --------------------------------------------------------------------------------------------
# Architectures


def test_layer_sizes_grow_geometrically_as_the_authors_code():
    sizes = layer_sizes((8, 4), (640, 368), 8)
    rh, rw = (640 / 8) ** (1 / 7), (368 / 4) ** (1 / 7)
    expected = [(int(np.ceil(8 * rh ** n)), int(np.ceil(4 * rw ** n))) for n in range(1, 7)]
    assert sizes == expected + [(640, 368)]
    assert sizes[:3] == [(15, 8), (28, 15), (53, 28)]


def test_convdecoder_shape_and_parameter_count():
    layers, channels, coils = 4, 16, 4
    out_channels = 2 * coils
    net = build_generator("convdecoder", (40, 36), out_channels, layers, channels, (8, 4),
                          generator=torch.Generator().manual_seed(0))
    assert isinstance(net, ConvDecoder)
    assert tuple(net.input.shape) == (1, channels, 8, 4)
    assert tuple(net().shape) == (1, out_channels, 40, 36)
    # layers x (3x3 conv without bias + BN weight and bias) + final 1x1 conv without bias
    expected = layers * (channels * channels * 9 + 2 * channels) + channels * out_channels
    assert count_parameters(net) == expected == 9472
    kernels = [m.kernel_size for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert kernels == [(3, 3)] * layers + [(1, 1)]


def test_deepdecoder_shape_and_parameter_count():
    layers, channels, out_channels = 5, 12, 2
    net = build_generator("deepdecoder", (33, 20), out_channels, layers, channels, (4, 4))
    assert tuple(net().shape) == (1, out_channels, 33, 20)
    expected = layers * (channels * channels + 2 * channels) + channels * out_channels
    assert count_parameters(net) == expected


def test_dip_shape_and_parameter_count():
    levels, c, out_channels = 3, 16, 6
    s, cin = SKIP_CHANNELS, DIP_INPUT_CHANNELS
    net = build_generator("dip", (37, 30), out_channels, levels, c)
    assert tuple(net.input.shape) == (1, cin, 37, 30)
    assert tuple(net().shape) == (1, out_channels, 37, 30)
    expected = 0
    for level_in in [cin] + [c] * (levels - 1):
        expected += 9 * level_in * c + 2 * c + 9 * c * c + 2 * c    # encoder: 2 convs + BN
        expected += level_in * s + 2 * s                              # 1x1 skip + BN
        expected += 9 * (c + s) * c + 2 * c + c * c + 2 * c           # decoder: 3x3, 1x1 + BN
    expected += c * out_channels                                      # final 1x1
    assert count_parameters(net) == expected


def test_generators_are_seeded():
    def params(seed):
        net = build_generator("convdecoder", (16, 16), 2, 3, 4, (4, 4),
                              generator=torch.Generator().manual_seed(seed))
        return torch.cat([p.flatten() for p in net.parameters()] + [net.input.flatten()])

    state = torch.random.get_rng_state()
    assert torch.equal(params(1), params(1))
    assert not torch.equal(params(1), params(2))
    assert torch.equal(state, torch.random.get_rng_state())   # the global RNG is untouched
    assert derive_seed(0, 0) != derive_seed(0, 1) and derive_seed(0, 1) == derive_seed(0, 1)


# --------------------------------------------------------------------------------------------
# Fitting and data consistency


@pytest.mark.parametrize("with_maps", [False, True], ids=["coils", "maps"])
def test_fit_lowers_the_loss_and_beats_zero_filling(with_maps):
    kspace, mask, maps, truth = make_phantom(64, 4, 3.0)
    measured = kspace * mask
    result = fit_untrained(measured, mask, maps if with_maps else None, layers=5, channels=32,
                           input_size=(8, 8), iters=300, seed=0)
    losses = result["losses"]
    assert losses.shape == (1, 300)
    assert result["loss"][0] == losses.min()
    assert losses[0, -20:].min() < 0.05 * losses[0, 0]
    zero_filled = rss(ifft2c(measured))
    gain = psnr(truth, result["image"]) - psnr(truth, zero_filled)
    assert gain > 2.0, gain      # seed 0 on CPU: about 4 dB (coils) and 5 dB (maps)
    assert torch.equal(result["image"], result["runs"][0])


def test_data_consistency_reproduces_the_measurements_exactly():
    gen = torch.Generator().manual_seed(3)
    shape = (4, 24, 20)
    coil_images = torch.randn(shape, dtype=torch.complex64, generator=gen)
    kspace = torch.randn(shape, dtype=torch.complex64, generator=gen)
    mask = (torch.rand(shape[-2:], generator=gen) < 0.4).float()
    sampled = mask.bool().expand(shape)
    consistent = fft2c(data_consistency(coil_images, kspace * mask, mask))
    scale = kspace.abs().max()
    assert torch.allclose(consistent[sampled], kspace[sampled], atol=1e-5 * scale, rtol=0)
    network = fft2c(coil_images)
    assert torch.allclose(consistent[~sampled], network[~sampled], atol=1e-5 * scale, rtol=0)


def test_mask_defaults_to_the_nonzero_pattern():
    kspace, mask, _, _ = make_phantom(32, 4, 3.0)
    assert torch.equal(sampling_pattern(kspace * mask), mask.bool())
    options = dict(layers=3, channels=8, input_size=(4, 4), iters=20)
    with_mask = fit_untrained(kspace, mask, **options)["image"]     # full k-space + a mask
    without = fit_untrained(kspace * mask, **options)["image"]      # zero-filled k-space
    assert torch.allclose(with_mask, without, rtol=1e-5, atol=1e-6 * without.abs().max())


@pytest.mark.parametrize("arch", ["convdecoder", "deepdecoder", "dip"])
def test_every_architecture_fits(arch):
    kspace, mask, _, _ = make_phantom(32, 4, 3.0)
    result = fit_untrained(kspace * mask, mask, arch=arch, layers=3, channels=8,
                           input_size=(4, 4), iters=40, lr=0.01)
    assert result["image"].shape == (32, 32) and torch.isfinite(result["image"]).all()
    assert result["losses"][0, -1] < result["losses"][0, 0]


# --------------------------------------------------------------------------------------------
# Command line


@pytest.fixture
def data(tmp_path):
    kspace, mask, maps, _ = make_phantom(32, 4, 3.0)
    paths = {"kspace": tmp_path / "k.npy", "mask": tmp_path / "mask.npy",
             "maps": tmp_path / "maps.npy", "slices": tmp_path / "k2.npy"}
    np.save(paths["kspace"], (kspace * mask).numpy())
    np.save(paths["mask"], mask[0].numpy())                  # (W,) as fastMRI stores it
    np.save(paths["maps"], maps.numpy())
    np.save(paths["slices"], torch.stack([kspace * mask, 0.5 * kspace * mask]).numpy())
    return paths


def test_cli_runs_average_equals_mean_of_kept_runs(data, tmp_path):
    out, runs = tmp_path / "out.npy", tmp_path / "runs.npy"
    result = invoke("convdecoder", data["kspace"], out, "--mask", data["mask"], *TINY,
                    "--runs", 3, "--runs-out", runs)
    assert result.exit_code == 0, result.output
    image, each = np.load(out), np.load(runs)
    assert image.shape == (32, 32) and each.shape == (3, 32, 32)
    np.testing.assert_allclose(image, each.mean(axis=0), rtol=1e-6, atol=1e-7)
    assert not np.allclose(each[0], each[1]) and not np.allclose(each[1], each[2])


def test_cli_same_seed_same_output(data, tmp_path):
    outputs = {}
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        outputs[name] = tmp_path / f"{name}.npy"
        result = invoke("convdecoder", data["kspace"], outputs[name], *TINY, "--seed", seed)
        assert result.exit_code == 0, result.output
    a, b, c = (np.load(outputs[n]) for n in "abc")
    assert np.array_equal(a, b)
    assert not np.allclose(a, c)


def test_cli_with_maps_complex_crop_and_no_dc(data, tmp_path):
    out = tmp_path / "x.npy"
    result = invoke("convdecoder", data["kspace"], out, "--maps", data["maps"], *TINY,
                    "--complex", "--crop", 24, 20)
    assert result.exit_code == 0, result.output
    image = np.load(out)
    assert image.shape == (24, 20) and np.iscomplexobj(image)
    result = invoke("convdecoder", data["kspace"], tmp_path / "m.npy", "--maps", data["maps"],
                    *TINY, "--no-dc")
    assert result.exit_code == 0, result.output
    magnitude = np.load(tmp_path / "m.npy")
    assert magnitude.shape == (32, 32) and magnitude.dtype == np.float32
    assert (magnitude >= 0).all()


def test_cli_slices_and_slice_option(data, tmp_path):
    full, one = tmp_path / "full.npy", tmp_path / "one.npy"
    assert invoke("convdecoder", data["slices"], full, *TINY).exit_code == 0
    assert invoke("convdecoder", data["slices"], one, *TINY, "--slice", 1).exit_code == 0
    full, one = np.load(full), np.load(one)
    assert full.shape == (2, 32, 32) and one.shape == (32, 32)
    np.testing.assert_array_equal(full[1], one)   # runs share their seed across slices


@pytest.mark.parametrize("args, message", [
    (["--complex"], "--complex: needs --maps"),
    (["--input-size", "64", "8"], "--input-size 64 8: larger than the image"),
    (["--layers", "1"], "--layers 1"),
    (["--iters", "0"], "--iters 0"),
    (["--crop", "40", "40"], "--crop 40 40"),
])
def test_cli_usage_errors(data, tmp_path, args, message):
    result = invoke("convdecoder", data["kspace"], tmp_path / "o.npy", *args)
    assert result.exit_code == 2
    assert message in result.output


def test_cli_help_states_defaults():
    result = invoke("convdecoder", "--help")
    assert result.exit_code == 0
    for text in ("--arch", "deepdecoder", "2500", "0.008", "--runs-out", "--no-dc", "--amp"):
        assert text in result.output


# --------------------------------------------------------------------------------------------
# Presets and early stopping


def test_preset_is_chosen_by_device():
    from mrgen.apps.convdecoder import PRESETS, UntrainedSettings, with_preset

    for device, expected in (("cpu", "cpu"), (torch.device("cpu"), "cpu"),
                             (torch.device("cuda"), "paper"), ("cuda:0", "paper")):
        settings, line = with_preset(UntrainedSettings(), device)
        assert settings.preset == expected, device
        assert line.startswith(f"preset {expected} (--preset auto on ")
        for key, value in PRESETS[expected].items():
            assert getattr(settings, key) == value, (device, key)
    settings, line = with_preset(UntrainedSettings(preset="paper"), "cpu")
    assert settings.preset == "paper" and settings.iters == 2500 and settings.holdout == 0
    assert settings.layers is None and "8 layers x 256 channels" in line   # the arch default
    settings, _ = with_preset(UntrainedSettings(preset="cpu"), torch.device("cuda"))
    assert (settings.layers, settings.channels, settings.holdout) == (5, 32, 0.05)
    settings, _ = with_preset(UntrainedSettings(arch="dip"), "cpu")  # the network size is
    assert settings.layers is None and settings.channels is None    # ConvDecoder's only


def test_explicit_options_override_the_preset():
    from mrgen.apps.convdecoder import PRESETS, UntrainedSettings, with_preset

    given = UntrainedSettings(layers=3, channels=8, input_size=(4, 4), iters=7, lr=0.01,
                              holdout=0.0, patience=0, channels_last=False)
    for preset in ("auto", "cpu", "paper"):
        settings, line = with_preset(replace_preset(given, preset), "cpu")
        assert (settings.layers, settings.channels, settings.input_size, settings.iters,
                settings.lr, settings.holdout, settings.patience, settings.channels_last) == \
            (3, 8, (4, 4), 7, 0.01, 0.0, 0, False)
        assert "3 layers x 8 channels, input 4x4, up to 7 iterations, lr 0.01" in line
    settings, _ = with_preset(UntrainedSettings(iters=11), "cpu")   # the rest: the preset's
    cpu = PRESETS["cpu"]
    assert (settings.iters, settings.channels, settings.patience) == \
        (11, cpu["channels"], cpu["patience"])


def replace_preset(settings, preset):
    from dataclasses import replace

    return replace(settings, preset=preset)


def test_cli_says_which_preset_and_why(data, tmp_path):
    result = invoke("convdecoder", data["kspace"], tmp_path / "o.npy", *TINY)
    assert result.exit_code == 0, result.output
    assert "preset cpu (--preset auto on cpu): convdecoder 3 layers x 8 channels, input " \
           "4x4, up to 30 iterations" in result.output
    assert "early stopping on 5% of the sampled k-space held out (patience 1000)" in result.output
    result = invoke("convdecoder", data["kspace"], tmp_path / "p.npy", *TINY, "--preset",
                    "paper", "--holdout", "0.1")
    assert result.exit_code == 0, result.output
    assert "preset paper (--preset paper): convdecoder 3 layers x 8 channels" in result.output
    assert "10% of the sampled k-space held out" in result.output


def test_early_stopping_rule():
    from mrgen.untrained import EarlyStopping

    stopper = EarlyStopping(patience=3)
    curve = [5, 4, 3, 2, 2.5, 3, 3.5, 4]   # the minimum at 3, rising after it
    stops = [stopper.update(i, loss) for i, loss in enumerate(curve)]
    assert stops == [False] * 6 + [True] * 2 and stopper.best_iteration == 3
    assert not EarlyStopping(patience=3, min_iters=20).update(10, 1.0 + 0 * stopper.update(8, 9))


class Path1D(torch.nn.Module):
    """A synthetic "network": a * base, one parameter a starting at 0."""

    def __init__(self, base):
        super().__init__()
        self.base = base
        self.a = torch.nn.Parameter(torch.zeros(()))

    def forward(self):
        return self.a * self.base


def test_fit_stops_when_the_held_out_loss_rises():
    """The fitted samples are 2 F(base), the held-out ones F(base): as Adam moves a from 0 to
    2 the held-out loss falls until a = 1 and then rises; the fit stops `patience` iterations
    later and keeps the output at the held-out minimum."""
    from mrgen.untrained import fit_network, holdout_split
    from mrgen.untrained.fit import model_input

    gen = torch.Generator().manual_seed(0)
    coils, n = 2, 16
    base = torch.randn((1, 2 * coils, n, n), generator=gen)
    sampled = torch.rand((n, n), generator=gen) < 0.5
    fitted, held = holdout_split(sampled, 0.25, gen)
    assert not (fitted & held).any() and torch.equal(fitted | held, sampled)
    assert int(held.sum()) == round(0.25 * int(sampled.sum()))
    truth = fft2c(model_input(base))
    kspace = truth * (2 * fitted + held)
    result = fit_network(Path1D(base), kspace, fitted, iters=2000, lr=0.01, held_out=held,
                         patience=50)
    heldout, losses = result["heldout"], result["losses"]
    minimum = int(heldout.argmin())
    assert 80 < minimum < 120                       # a = 1 after about 100 Adam steps
    assert result["stopped"] == result["iterations"] < 250 and len(losses) < 250
    assert minimum + 50 <= result["iterations"] <= minimum + 50 + 25
    assert heldout[-1] > 1.5 * heldout[minimum]     # it rose
    assert losses[-1] < losses[minimum]             # while the fitted loss still fell
    assert torch.allclose(result["output"], base, rtol=0, atol=0.02 * base.abs().max())
    assert float(result["loss"]) == float(heldout[minimum])
    run_all = fit_network(Path1D(base), kspace, fitted, iters=300, lr=0.01, held_out=held)
    assert run_all["iterations"] == 300 and run_all["stopped"] is None   # no patience
    cosine = Path1D(base)   # the rate falls from 0.01 to 0: Adam's steps add up to ~0.5
    fit_network(cosine, kspace, fitted, iters=100, lr=0.01, schedule="cosine")
    assert 0.4 < float(cosine.a) < 0.6, float(cosine.a)


def test_cpu_preset_same_seed_same_output():
    kspace, mask, _, _ = make_phantom(32, 4, 3.0)
    options = dict(layers=3, channels=8, input_size=(4, 4), iters=60, holdout=0.1, patience=10,
                   channels_last=True)
    a = fit_untrained(kspace * mask, mask, seed=5, **options)
    b = fit_untrained(kspace * mask, mask, seed=5, **options)
    c = fit_untrained(kspace * mask, mask, seed=6, **options)
    assert torch.equal(a["image"], b["image"])
    torch.testing.assert_close(a["heldout"], b["heldout"], rtol=0, atol=0, equal_nan=True)
    assert torch.equal(a["iterations"], b["iterations"])
    assert not torch.allclose(a["image"], c["image"])
    assert torch.isfinite(a["heldout"][0, :int(a["iterations"][0])]).all()


@requires_cuda
def test_fit_on_cuda_with_and_without_amp():
    kspace, mask, maps, truth = make_phantom(64, 4, 3.0)
    measured = kspace * mask
    zero_filled = psnr(truth, rss(ifft2c(measured)))
    for amp in (False, True):
        result = fit_untrained(measured, mask, maps, layers=5, channels=32, input_size=(8, 8),
                               iters=300, amp=amp, device="cuda")
        assert result["image"].device.type == "cpu"
        assert psnr(truth, result["image"]) > zero_filled + 2.0
