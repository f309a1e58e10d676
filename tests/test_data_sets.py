"""Whole data sets: --out-dir over files, globs and folders; skip what exists; totals;
--fail-fast; and under torchrun (2 CPU processes, gloo) each input done once by one rank."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from .conftest import expect, invoke, random_complex

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def data_set(tmp_path, monkeypatch):
    """set/: three 2-coil k-spaces (two .npy, one .h5) and a broken one; their zf images."""
    import h5py

    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    Path("set").mkdir()
    kspaces = {"a": random_complex(rng, 2, 8, 8), "c": random_complex(rng, 2, 2, 8, 8)}
    for name, k in kspaces.items():
        np.save(f"set/{name}.npy", k)
    kspaces["b"] = random_complex(rng, 2, 8, 6)
    with h5py.File("set/b.h5", "w") as f:
        f["kspace"] = kspaces["b"]
    np.save("set/b_broken.npy", np.zeros((3, 3), np.float32))   # not a k-space
    images = {}
    for name, k in kspaces.items():
        np.save("one.npy", k)
        expect("zf", "one.npy", f"{name}.ref.npy")
        images[name] = np.load(f"{name}.ref.npy")
    return images


def _lines(result, word):
    return [line for line in result.stderr.splitlines() if word in line]


def test_a_folder_one_output_per_input_failures_reported_and_totals(data_set):
    result = invoke("zf", "--out-dir", "out", "set")
    assert result.exit_code == 1   # one input failed
    np.testing.assert_array_equal(np.load("out/a.npy"), data_set["a"])
    np.testing.assert_array_equal(np.load("out/c.npy"), data_set["c"])
    import h5py

    with h5py.File("out/b.h5") as f:
        np.testing.assert_array_equal(f["reconstruction"][()], data_set["b"])
    assert not Path("out/b_broken.npy").exists()
    assert _lines(result, "[4/4] set/c.npy -> out/c.npy (2 slices)")
    assert _lines(result, "4 input(s): 3 done (4 slices), 0 skipped (output exists), 1 failed")
    failed = _lines(result, "  failed: ")
    assert len(failed) == 1 and "set/b_broken.npy: the k-space needs" in failed[0]
    # A second run skips what exists and tries the failed one again.
    again = invoke("zf", "--out-dir", "out", "set")
    assert _lines(again, "4 input(s): 0 done, 3 skipped (output exists), 1 failed")


def test_globs_names_format_and_fail_fast(data_set):
    result = invoke("zf", "--out-dir", "out", "--format", "nifti", "set/*.npy", "set/b.h5",
                    "--fail-fast")
    assert result.exit_code == 1
    # sorted glob: a, b_broken (fails: stop), c never tried; b.h5 after the glob not reached
    assert sorted(p.name for p in Path("out").iterdir()) == ["a.nii.gz"]
    assert _lines(result, "0 skipped (output exists), 1 failed")
    nibabel = pytest.importorskip("nibabel")
    np.testing.assert_array_equal(np.asarray(nibabel.load("out/a.nii.gz").dataobj),
                                  data_set["a"])


@pytest.mark.parametrize("args, word", [
    (["zf", "set/a.npy", "out.npy", "set/c.npy"], "several inputs need --out-dir"),
    (["zf", "set/a.npy"], "missing argument"),
    (["zf", "--out-dir", "out", "set/*.cfl"], "matches no file"),
    (["zf", "--out-dir", "set", "set/a.npy"], "would overwrite its input"),
    (["zf", "--out-dir", "out", "set/a.npy", "set/b.h5", "--format", "npy", "set/b_broken.npy",
      "dup/b.npy"], "two inputs of one name"),
    (["espirit", "--out-dir", "out", "--eigenvalues", "e.npy", "set"], "--eigenvalues"),
    (["zf", "--out-dir", "out", "--crop", "0", "0", "set"], "--crop"),
    (["zf", "--out-dir", "out", "-"], "standard input"),
])
def test_data_set_usage_errors(data_set, args, word):
    Path("dup").mkdir()
    np.save("dup/b.npy", np.ones((2, 8, 8), np.complex64))
    result = invoke(*args)
    assert result.exit_code == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and word in lines[0], lines
    assert not Path("out").exists()


def test_one_input_under_torchrun_runs_on_rank_0_only(data_set, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    result = expect("zf", "set/a.npy", "a.npy")
    assert "rank 1: one input runs on rank 0" in result.stderr
    assert not Path("a.npy").exists()
    monkeypatch.setenv("RANK", "0")
    expect("zf", "set/a.npy", "a.npy")
    np.testing.assert_array_equal(np.load("a.npy"), data_set["a"])


def test_torchrun_two_ranks_share_the_inputs(data_set):
    """torchrun --nproc_per_node 2 on CPU (gloo): every input done once, by one rank, and
    rank 0 reports the totals of the whole set."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    run = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "commands", "zf", "--device", "cpu", "--out-dir", "out", "set"],
        capture_output=True, text=True, env=env, timeout=240)
    assert run.returncode != 0   # b_broken fails on its rank
    for name in ("a", "c"):
        np.testing.assert_array_equal(np.load(f"out/{name}.npy"), data_set[name])
    started = [line for line in run.stderr.splitlines() if " -> out/" in line]
    ranks = {line.split(":")[0] for line in started}
    assert ranks == {"rank 0", "rank 1"}, run.stderr
    assert sorted(line.split("] ")[1].split(" ->")[0] for line in started) == [
        "set/a.npy", "set/b.h5", "set/b_broken.npy", "set/c.npy"]
    totals = [line for line in run.stderr.splitlines() if "4 input(s)" in line]
    assert len(totals) == 1 and "3 done (4 slices), 0 skipped (output exists), 1 failed" in \
        totals[0]
    numbers = sorted(line.split("[")[1].split("]")[0] for line in started)
    assert numbers == ["1/4", "2/4", "3/4", "4/4"]   # counted over the whole set
