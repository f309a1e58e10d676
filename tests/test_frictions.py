"""What a new user met (issue 12, part 4): defaults that work and advice that can help."""

import numpy as np
import pytest

from .conftest import expect, invoke


@pytest.fixture(scope="module")
def scan(tmp_path_factory):
    folder = tmp_path_factory.mktemp("frictions")
    expect("--quiet", "phantom", "--size", 64, 64, "--coils", 4, "--noise", 0.002,
           folder / "d.h5")
    return folder


def test_djsense_without_model_or_mode_uses_the_shipped_model(scan, tmp_path):
    expect("--quiet", "mask", "--like", scan / "d.h5", "--kind", "random-exact", "--accel", 4,
           "--center", 0.125, tmp_path / "m.npy")
    result = expect("djsense", "--mask", tmp_path / "m.npy", scan / "d.h5", tmp_path / "o.npy")
    assert "Deep J-Sense (djsense-brain-small): 1 slice(s), 4 unrolls" in result.stderr
    named = expect("djsense", "--model", "djsense-brain-small", "--mask", tmp_path / "m.npy",
                   scan / "d.h5", tmp_path / "named.npy")
    assert "Deep J-Sense (djsense-brain-small)" in named.stderr
    # the default is exactly the named model
    assert np.array_equal(np.load(tmp_path / "o.npy"), np.load(tmp_path / "named.npy"))
    both = invoke("djsense", "--mode", "l2", "--model", "djsense-brain-small", "--mask",
                  tmp_path / "m.npy", scan / "d.h5", tmp_path / "both.npy")
    assert both.exit_code == 2
    assert "mrgen djsense: give one of --model FILE.pt and --mode l2, not both" in both.stderr
    assert not (tmp_path / "both.npy").exists()


def test_equispaced_default_centre_fits_256_lines(tmp_path):
    # The default centre (0.32 / R = 0.08: 20 of 256 lines) has no integer spacing within 2%
    # of 4x; the default moves to the nearest centre that fits (18 lines, spacing 5).
    result = expect("mask", "--shape", 256, 256, "--kind", "equispaced", "--accel", 4,
                    tmp_path / "e.npy")
    assert "18 centre lines" in result.stderr and "spacing 5" in result.stderr
    assert "default centre 20 lines moved to 18 to fit (--center 0.0703)" in result.stderr
    mask = np.load(tmp_path / "e.npy")
    lines = mask[0] > 0
    assert abs(256 / lines.sum() - 4) / 4 <= 0.02
    assert lines[128 - 9:128 + 9].all()  # the 18 centre lines
    # An explicit --center is taken as given: the error names one that fits.
    given = invoke("mask", "--shape", 256, 256, "--kind", "equispaced", "--accel", 4,
                   "--center", 0.08, tmp_path / "g.npy")
    assert given.exit_code == 2 and "try --center 0.0703" in given.stderr
    assert not (tmp_path / "g.npy").exists()
    # Where the default fits it is unchanged (64 lines: 5 centre lines at 4x).
    small = expect("mask", "--shape", 64, 64, "--kind", "equispaced", "--accel", 4,
                   tmp_path / "s.npy")
    assert "moved" not in small.stderr


def test_espirit_too_few_centre_lines_advises_what_helps(scan, tmp_path):
    # The default 4x mask on 64 lines has 5 centre lines: less than the 6x6 kernel. --calib
    # cannot help (a larger block takes in unsampled lines); more lines or a smaller kernel do.
    expect("--quiet", "mask", "--like", scan / "d.h5", "--kind", "random-exact", "--accel", 4,
           tmp_path / "m5.npy")
    result = invoke("espirit", "--mask", tmp_path / "m5.npy", scan / "d.h5",
                    tmp_path / "maps.npy")
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "mrgen espirit: k-space: the fully-sampled centre is 24x5, smaller than the 6x6 kernel "
        "(--kernel); sample more centre lines (mrgen mask --center) or a kernel that fits "
        "(--kernel 6x5)")
    assert "--calib" not in result.stderr
    assert not (tmp_path / "maps.npy").exists()
    # Both pieces of advice work.
    expect("--quiet", "espirit", "--kernel", "6x5", "--mask", tmp_path / "m5.npy",
           scan / "d.h5", tmp_path / "maps.npy")
    expect("--quiet", "mask", "--like", scan / "d.h5", "--kind", "random-exact", "--accel", 4,
           "--center", 0.1, tmp_path / "m6.npy")
    expect("--quiet", "espirit", "--mask", tmp_path / "m6.npy", scan / "d.h5",
           tmp_path / "maps6.npy")
