"""Whole data sets: --out-dir over files, globs and folders; skip what exists; totals;
--fail-fast; further inputs (sense's MAPS, --maps) shared or matched by name; and under
torchrun (2 CPU processes, gloo) each input done once by one rank, or one input's slices
split between the ranks and joined by rank 0 into exactly the single-process output."""

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
    assert _lines(result, "[4/4] set/c.npy -> out/c.npy (slices 3-4 of 4)")   # files, slices
    assert _lines(result, "[1/4] set/a.npy -> out/a.npy (slice 1 of 4)")
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
    (["sense", "--out-dir", "out", "set", "maps/*.npy"], "matches no file"),
    (["langevin", "--out-dir", "out", "--prior-only", "set"], "--prior-only"),
    (["langevin", "--out-dir", "out", "set", "--var", "v.npy"], "--var: one file for all"),
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


@pytest.fixture
def scans(tmp_path, monkeypatch):
    """ks/: two 3-coil k-spaces (x: 5 slices, y: one 2D scan); maps/: their maps by name."""
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(1)
    for folder in ("ks", "maps"):
        Path(folder).mkdir()
    for name, shape in (("x", (5, 3, 12, 12)), ("y", (3, 10, 12))):
        np.save(f"ks/{name}.npy", random_complex(rng, *shape))
        np.save(f"maps/{name}.npy", 0.4 * random_complex(rng, *shape))


def _single(*args):
    """The output of one mrgen run on one input."""
    expect(*args, "single.npy")
    return np.load("single.npy")


def test_sense_maps_matched_by_name_or_one_file_for_all(scans):
    """sense KSPACE... MAPS --out-dir: MAPS a folder or glob (each input's maps by name) or one
    file; an input without maps of its name fails alone."""
    x = _single("sense", "ks/x.npy", "maps/x.npy")
    y = _single("sense", "ks/y.npy", "maps/y.npy")
    result = expect("sense", "--out-dir", "out", "ks", "maps")
    np.testing.assert_array_equal(np.load("out/x.npy"), x)
    np.testing.assert_array_equal(np.load("out/y.npy"), y)
    assert _lines(result, "[1/2] ks/x.npy -> out/x.npy (slices 1-5 of 6)")
    assert _lines(result, "[2/2] ks/y.npy -> out/y.npy (slice 6 of 6)")
    assert _lines(result, "2 input(s): 2 done (6 slices), 0 skipped")
    expect("sense", "--out-dir", "glob", "ks/x.npy", "ks/y.npy", "maps/*.npy")
    np.testing.assert_array_equal(np.load("glob/y.npy"), y)
    np.save("x_maps.npy", np.load("maps/x.npy"))
    expect("sense", "--out-dir", "shared", "ks/x.npy", "x_maps.npy")   # one file for all
    np.testing.assert_array_equal(np.load("shared/x.npy"), x)
    Path("maps/y.npy").unlink()
    result = invoke("sense", "--out-dir", "missing", "ks", "maps")
    assert result.exit_code == 1
    np.testing.assert_array_equal(np.load("missing/x.npy"), x)
    assert _lines(result, "  failed: ks/y.npy: MAPS maps: no file named y for ks/y.npy")


def test_langevin_data_set_with_maps_by_name(scans):
    chain = ["--burn-in", "2", "--samples", "2", "--thin", "1", "--seed", "3"]
    y = _single("langevin", *chain, "--maps", "maps/y.npy", "ks/y.npy")
    x = _single("langevin", *chain, "--maps", "maps/x.npy", "ks/x.npy")
    result = expect("langevin", *chain, "--maps", "maps", "--out-dir", "out", "ks")
    np.testing.assert_array_equal(np.load("out/x.npy"), x)
    np.testing.assert_array_equal(np.load("out/y.npy"), y)
    assert _lines(result, "2 input(s): 2 done (6 slices)")


def _torchrun(*args):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "commands", *args, "--device", "cpu"],
        capture_output=True, text=True, env=env, timeout=240)


def test_torchrun_two_ranks_split_the_slices_of_one_input(scans):
    """One input, two ranks: slices 0:3 on rank 0 and 3:5 on rank 1, each written to a part;
    rank 0 joins them into exactly the single-process output, and no part is left."""
    x = _single("sense", "ks/x.npy", "maps/x.npy")
    run = _torchrun("sense", "ks/x.npy", "maps/x.npy", "split.npy")
    assert run.returncode == 0, run.stderr
    np.testing.assert_array_equal(np.load("split.npy"), x)
    assert _lines(run, "rank 0: ks/x.npy slices 0:3") and _lines(run, "rank 1: ks/x.npy slices 3:5")
    assert sorted(p.name for p in Path(".").iterdir()) == ["ks", "maps", "single.npy",
                                                          "split.npy"]
    # A data set of fewer inputs than ranks: its inputs one after the other, each split (a 2D
    # scan goes to one rank); the maps matched by name; NIfTI joined as one process writes it.
    nibabel = pytest.importorskip("nibabel")
    expect("sense", "--format", "nifti", "ks/x.npy", "maps/x.npy", "x.nii.gz")
    Path("one").mkdir()
    Path("one/x.npy").symlink_to(Path("ks/x.npy").resolve())
    run = _torchrun("sense", "--format", "nifti", "--out-dir", "out", "one", "maps")
    assert run.returncode == 0, run.stderr
    single, split = nibabel.load("x.nii.gz"), nibabel.load("out/x.nii.gz")
    np.testing.assert_array_equal(np.asarray(split.dataobj), np.asarray(single.dataobj))
    np.testing.assert_array_equal(split.affine, single.affine)
    assert _lines(run, "[1/1] one/x.npy -> out/x.nii.gz (slices 1-5 of 5), split across 2 ranks")
    assert _lines(run, "1 input(s): 1 done (5 slices), 0 skipped (output exists), 0 failed")
    assert sorted(p.name for p in Path("out").iterdir()) == ["x.nii.gz"]


@pytest.mark.parametrize("count, chosen, world, ranges", [
    (5, None, 2, ["0:3", "3:5"]),
    (5, "1:4", 2, ["1:3", "3:4"]),
    (2, None, 3, ["0:1", "1:2", None]),    # fewer slices than ranks: the last idle
    (5, "-2:", 2, ["3:4", "4:5"]),
    (5, "2", 2, None),                     # one slice chosen (its axis dropped): not split
    (1, None, 2, None),
])
def test_slice_ranges(count, chosen, world, ranges):
    from commands.batch import slice_ranges

    assert slice_ranges(count, chosen, world) == ranges
