"""mrgen.masks and `mrgen mask`: accelerations, determinism, centres, swap, errors, the CLI."""

import math
import subprocess
import sys
from dataclasses import replace
from io import BytesIO

import numpy as np
import pytest
from typer.testing import CliRunner

from commands.main import app
from mrgen import io
from mrgen.errors import UsageError
from mrgen.masks import (KINDS, ONE_D_KINDS, MaskSpec, make_mask, parse_mask_spec,
                         sample_mask)

# (kind, shape, accel) combinations that can be met within 2% on small grids.
CASES = [
    ("random-exact", (16, 64), 4),
    ("equispaced", (16, 64), 4),
    ("equispaced-fraction", (8, 320), 4),
    ("poisson", (64, 64), 4),
    ("poisson", (48, 40), 3),
    ("sigpy-poisson", (64, 48), 4),
    ("gaussian", (64, 64), 4),
    ("uniform", (64, 64), 4),
    ("radial", (192, 192), 4),      # one spoke is ~1% of the samples here; 64x64 is too coarse
    ("spiral", (64, 64), 4),
    ("spiral", (64, 80), 3),
]
RANDOM_KINDS = ("random", "random-exact", "poisson", "gaussian", "uniform", "radial", "spiral")




def invoke(*args):
    return CliRunner().invoke(app, ["mask", *map(str, args)])


def acceleration(mask):
    return mask.size / mask.sum()


# --------------------------------------------------------------------------------------------
# library


@pytest.mark.parametrize("kind,shape,accel", CASES)
def test_accel_within_two_percent(kind, shape, accel):
    for seed in range(3):
        mask, info = sample_mask(MaskSpec(kind, accel), shape, seed)
        assert mask.shape == shape and mask.dtype == np.float32
        assert set(np.unique(mask)) <= {0.0, 1.0}
        assert abs(acceleration(mask) - accel) / accel <= 0.02
        assert math.isclose(info.achieved, acceleration(mask), rel_tol=1e-6)


def test_random_expected_accel_over_seeds():
    width, accel = 128, 4
    mask, info = sample_mask(MaskSpec("random", accel), (4, width), 0)
    assert math.isclose(info.expected, accel)
    lines = [make_mask("random:4", (1, width), seed).sum() for seed in range(400)]
    assert abs(np.mean(lines) - width / accel) < 0.5         # expected count W / R
    assert np.std(lines) > 1                                  # but it varies
    n_low = round(width * 0.08)
    prob = (width / accel - n_low) / (width - n_low)
    assert f"line probability {prob:.3f} outside the centre" in info.details


@pytest.mark.parametrize("kind", KINDS)
def test_same_seed_same_mask(kind):
    spec = MaskSpec(kind, 4)
    shape = (8, 320) if kind == "equispaced-fraction" else (32, 64)
    first = make_mask(spec, shape, 7, tolerance=None)
    np.testing.assert_array_equal(first, make_mask(spec, shape, 7, tolerance=None))
    np.testing.assert_array_equal(first, make_mask(spec, shape, np.random.default_rng(7),
                                                   tolerance=None))


@pytest.mark.parametrize("kind", RANDOM_KINDS)
def test_different_seed_different_mask(kind):
    masks = [make_mask(MaskSpec(kind, 4), (32, 64), seed, tolerance=None) for seed in range(3)]
    assert not np.array_equal(masks[0], masks[1])
    assert not np.array_equal(masks[1], masks[2])


def test_equispaced_offsets_vary_with_seed():
    # The offset is drawn among those that meet the tolerance; without one, among all.
    masks = {make_mask("equispaced:4:0.08", (1, 64), seed, tolerance=None).tobytes()
             for seed in range(20)}
    assert len(masks) > 1


def test_global_numpy_rng_untouched():
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    for kind in ("random", "poisson", "gaussian"):
        make_mask(MaskSpec(kind, 4), (32, 32), 1)
    np.testing.assert_array_equal(np.random.get_state()[1], before)


def test_generator_as_seed_draws_a_stream():
    rng = np.random.default_rng(5)
    first, second = make_mask("random-exact:4", (4, 64), rng), make_mask("random-exact:4",
                                                                          (4, 64), rng)
    assert not np.array_equal(first, second)
    again = np.random.default_rng(5)
    np.testing.assert_array_equal(first, make_mask("random-exact:4", (4, 64), again))


@pytest.mark.parametrize("kind", ONE_D_KINDS)
@pytest.mark.parametrize("width,center", [(64, 0.08), (65, 0.1), (320, 0.08)])
def test_1d_centre_lines_and_columns(kind, width, center):
    accel = 4
    spec = MaskSpec(kind, accel, center)
    try:
        mask = make_mask(spec, (6, width), 3)
    except UsageError:
        assert kind in ("equispaced", "equispaced-fraction")   # integer spacings may not fit
        mask = make_mask(spec, (6, width), 3, tolerance=None)
    n_low = round(width * center)
    start = (width - n_low + 1) // 2
    assert np.all(mask[:, start:start + n_low] == 1)
    assert np.all(mask == mask[:1])                               # whole lines along H


def test_default_centre_is_fastmri():
    assert math.isclose(MaskSpec("random", 4).center_fraction(), 0.08)
    assert math.isclose(MaskSpec("poisson", 8).center_fraction(), 0.04)
    assert MaskSpec("uniform", 4).center_fraction() == 0
    assert MaskSpec("radial", 4).center_fraction() == 0
    _, info = sample_mask("random-exact:4", (8, 320), 0)
    assert info.center == "26 centre lines"


@pytest.mark.parametrize("kind", ["poisson", "gaussian"])
def test_2d_centre_rectangle(kind):
    height, width, center = 64, 48, 0.125
    mask = make_mask(MaskSpec(kind, 4, center), (height, width), 2)
    ch, cw = round(height * center), round(width * center)
    y0, x0 = (height - ch + 1) // 2, (width - cw + 1) // 2
    assert np.all(mask[y0:y0 + ch, x0:x0 + cw] == 1)


def test_sigpy_poisson_is_sigpys_mask():
    import sigpy.mri

    mask, info = sample_mask("sigpy-poisson:4", (64, 48), 3)
    seed = int(np.random.default_rng(3).integers(2 ** 31))     # drawn from the seed's stream
    expected = sigpy.mri.poisson((64, 48), 4, calib=(5, 4), dtype=np.float32, seed=seed,
                                 tol=0.02 * 4)
    np.testing.assert_array_equal(mask, expected)
    assert info.center == "5x4 centre" and f"sigpy.mri.poisson seed {seed}" in info.details
    assert mask[29:34, 22:26].all()                              # sigpy's calibration block
    with pytest.raises(UsageError, match="--accel 1000"):
        make_mask("sigpy-poisson:1000", (64, 48), 3)


@pytest.mark.parametrize("kind", ["radial", "spiral"])
def test_centre_ellipse_and_dc(kind):
    mask = make_mask(MaskSpec(kind, 4, 0.2), (64, 64), 1)
    y, x = np.mgrid[:64, :64]
    inside = ((y - 32) / 6.4) ** 2 + ((x - 32) / 6.4) ** 2 <= 1
    assert np.all(mask[inside] == 1)
    assert make_mask(MaskSpec(kind, 4), (64, 64), 1)[32, 32] == 1   # through the centre


def test_uniform_has_no_dense_centre():
    mask = make_mask("uniform:4", (128, 128), 0)
    centre, edge = mask[56:72, 56:72].mean(), mask[:16, :16].mean()
    assert abs(centre - edge) < 0.15


def test_radial_spokes_and_bisection():
    few, many = make_mask(MaskSpec("radial", None, spokes=8), (64, 64), 0), \
        make_mask(MaskSpec("radial", None, spokes=24), (64, 64), 0)
    assert few.sum() < many.sum()
    _, info = sample_mask("radial:4", (256, 256), 0)
    assert abs(info.achieved - 4) / 4 <= 0.02
    assert any("spokes" in d for d in info.details)
    with pytest.raises(UsageError, match=r"--accel 4: radial on 64x64 .* spokes give"):
        make_mask("radial:4", (64, 64), 0)       # one spoke is ~6% of the samples


def test_spiral_arms():
    mask = make_mask(MaskSpec("spiral", 4, arms=3), (64, 64), 0)
    assert abs(acceleration(mask) - 4) / 4 <= 0.02


@pytest.mark.parametrize("kind,shape", [("random-exact", (24, 40)), ("random", (24, 40)),
                                        ("poisson", (24, 40)), ("radial", (24, 40))])
def test_swap_transposes(kind, shape):
    spec = MaskSpec(kind, 3)
    swapped = make_mask(replace(spec, swap=True), shape, 4, tolerance=None)
    assert swapped.shape == shape
    np.testing.assert_array_equal(swapped, make_mask(spec, shape[::-1], 4, tolerance=None).T)
    if kind in ONE_D_KINDS:
        assert np.all(swapped == swapped[:, :1])                  # whole rows: along H


def test_equispaced_spacing_is_constant():
    for width, accel, center in [(64, 4, 0.08), (320, 8, None), (100, 3, 0.05)]:
        for seed in range(5):
            spec = MaskSpec("equispaced", accel, center)
            line = make_mask(spec, (1, width), seed, tolerance=None)[0].astype(bool)
            n_low = round(width * spec.center_fraction())
            centre = np.zeros(width, bool)
            start = (width - n_low + 1) // 2
            centre[start:start + n_low] = True
            outside = np.flatnonzero(line & ~centre)
            spacing = int(np.diff(outside).min())
            expected = centre.copy()
            expected[outside[0] % spacing::spacing] = True
            np.testing.assert_array_equal(line, expected)          # centre + one progression
            assert outside[0] % spacing == outside[0]              # offset in [0, spacing)


def test_equispaced_fraction_is_fastmri():
    width, accel, center = 320, 4, 0.08
    n_low = round(width * center)
    centre = np.zeros(width)
    pad = (width - n_low + 1) // 2
    centre[pad:pad + n_low] = 1
    adjusted = (accel * (n_low - width)) / (n_low * accel - width)
    candidates = []
    for offset in range(round(adjusted)):
        lines = centre.copy()
        lines[np.around(np.arange(offset, width - 1, adjusted)).astype(np.uint)] = 1
        candidates.append(lines)
    for seed in range(4):
        line = make_mask(MaskSpec("equispaced-fraction", accel, center), (1, width), seed)[0]
        assert any(np.array_equal(line, c) for c in candidates)


def test_parse_mask_spec():
    spec = parse_mask_spec("random-exact:4:0.08")
    assert spec == MaskSpec("random-exact", 4.0, 0.08)
    assert str(spec) == "random-exact:4:0.08"
    assert parse_mask_spec("poisson:8") == MaskSpec("poisson", 8.0)
    radial = parse_mask_spec("radial::spokes=16")
    assert radial.accel is None and radial.spokes == 16
    assert parse_mask_spec(str(radial)) == radial
    assert parse_mask_spec("spiral:4:arms=2:swap") == MaskSpec("spiral", 4.0, arms=2, swap=True)
    np.testing.assert_array_equal(make_mask("gaussian:4:0.1", (32, 32), 3),
                                  make_mask(MaskSpec("gaussian", 4, 0.1), (32, 32), 3))
    for bad, option in [("nope:4", "--kind"), ("random:1", "--accel"), ("random:4:1.5",
                                                                         "--center"),
                        ("random", "expected"), ("random:x", "numbers")]:
        with pytest.raises(UsageError, match=option):
            parse_mask_spec(bad)


@pytest.mark.parametrize("spec,shape,option", [
    (MaskSpec("random", 1.0), (8, 64), "--accel"),
    (MaskSpec("random", 0.5), (8, 64), "--accel"),
    (MaskSpec("random", 4, 1.0), (8, 64), "--center"),
    (MaskSpec("random", 4, -0.1), (8, 64), "--center"),
    (MaskSpec("random-exact", 4, 0.5), (8, 64), "--center"),       # centre over budget
    (MaskSpec("poisson", 4, 0.6), (32, 32), "--center"),
    (MaskSpec("uniform", 4, 0.1), (32, 32), "--center"),
    (MaskSpec("bogus", 4), (8, 64), "--kind"),
    (MaskSpec("equispaced", 4, 0.08), (8, 368), "--accel"),        # integer spacings miss 4x
    (MaskSpec("spiral", 1.1), (32, 32), "--accel"),                 # beyond the ellipse
    (MaskSpec("radial", None), (32, 32), "--accel"),
    (MaskSpec("radial", 4, spokes=2), (32, 32), "--accel"),
    (MaskSpec("random", 4, spokes=2), (32, 32), "--spokes"),
])
def test_invalid_inputs(spec, shape, option):
    with pytest.raises(UsageError, match=option):
        make_mask(spec, shape, 0)


def test_poisson_fullsize_meets_acceleration():
    mask = make_mask("poisson:4", (320, 320), 0)
    assert abs(acceleration(mask) - 4) / 4 <= 0.02


# --------------------------------------------------------------------------------------------
# command line


def test_cli_like_writes_readable_mask(tmp_path):
    kspace = tmp_path / "k.npy"
    np.save(kspace, np.ones((2, 24, 40), np.complex64))
    out = tmp_path / "mask.npy"
    result = invoke(out, "--like", kspace, "--kind", "random-exact", "--accel", "4")
    assert result.exit_code == 0, result.output
    mask = io.read_array(str(out), io.roles.MASK)
    assert mask.shape == (24, 40) and mask.dtype == np.float32
    assert math.isclose(acceleration(mask), 4)
    assert "achieved 4.00x" in result.stderr and "requested 4x" in result.stderr
    assert "centre lines" in result.stderr
    np.testing.assert_array_equal(mask, make_mask("random-exact:4", (24, 40), 0))


def test_cli_seed_and_swap(tmp_path):
    outs = [tmp_path / f"m{i}.npy" for i in range(4)]
    assert invoke(outs[0], "--shape", 32, 48, "--kind", "poisson", "--accel", 3,
                  "--seed", 5).exit_code == 0
    assert invoke(outs[1], "--shape", 32, 48, "--kind", "poisson", "--accel", 3,
                  "--seed", 5).exit_code == 0
    assert invoke(outs[2], "--shape", 32, 48, "--kind", "poisson", "--accel", 3,
                  "--seed", 6).exit_code == 0
    a, b, c = (np.load(o) for o in outs[:3])
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    np.testing.assert_array_equal(a, make_mask("poisson:3", (32, 48), 5))
    result = invoke(outs[3], "--shape", 32, 48, "--kind", "random-exact", "--accel", 4,
                    "--swap")
    assert result.exit_code == 0, result.output
    swapped = np.load(outs[3])
    assert np.all(swapped == swapped[:, :1])
    assert swapped[:, 0].sum() == 8


def test_cli_stdout_is_clean_and_quiet(tmp_path):
    result = invoke("-", "--shape", 16, 32, "--kind", "uniform", "--accel", 4, "--quiet")
    assert result.exit_code == 0
    assert result.stderr == ""
    mask = np.load(BytesIO(result.stdout_bytes))
    assert mask.shape == (16, 32) and mask.sum() == 128


@pytest.mark.parametrize("args,option", [
    (["--shape", 8, 64, "--accel", 1], "--accel"),
    (["--shape", 8, 64, "--accel", 4, "--center", 1], "--center"),
    (["--shape", 8, 64, "--accel", 4, "--center", 0.6], "--center"),
    (["--shape", 8, 64, "--accel", 4, "--kind", "zigzag"], "--kind"),
    (["--accel", 4], "--like"),
    (["--shape", 8, 64, "--like", "k.npy", "--accel", 4], "--shape"),
    # an explicit centre is kept (the default one moves to fit: test_frictions.py)
    (["--shape", 8, 368, "--kind", "equispaced", "--accel", 4, "--center", 0.08], "--accel"),
])
def test_cli_usage_errors(tmp_path, args, option):
    out = tmp_path / "m.npy"
    result = invoke(out, *args)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and option in lines[0] and lines[0].startswith("mrgen mask: ")
    assert not out.exists()


def test_cli_unreachable_accel_subprocess(tmp_path):
    out = tmp_path / "m.npy"
    proc = subprocess.run([sys.executable, "-m", "commands", "mask", str(out), "--shape", "8",
                           "368", "--kind", "equispaced", "--accel", "4", "--center", "0.08"],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "--accel 4" in lines[0] and "--center" in lines[0]
    assert not out.exists()
