"""The bad-input corpus: what a user can get wrong, one row per case.

Every row must end with exit code 2 (or 1 for a runtime failure), one line on stderr that
holds the given word, no traceback, and no new file in the folder (no output, no temporary
file). The commands run in-process on tiny arrays (16 x 16, 2 coils) and stop before any
heavy work, so the whole corpus takes a few seconds.
"""

import os

import h5py
import numpy as np
import pytest

from .conftest import invoke, random_complex

H = W = 16


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """The inputs of every row, written once."""
    path = tmp_path_factory.mktemp("bad")
    rng = np.random.default_rng(7)
    kspace = random_complex(rng, 2, H, W)
    maps = random_complex(rng, 2, H, W)
    maps /= np.sqrt((np.abs(maps) ** 2).sum(0))
    mask = np.zeros((H, W), np.float32)
    mask[:, ::2] = 1
    image = np.abs(random_complex(rng, H, W))
    arrays = {
        "k.npy": kspace,
        "ms.npy": random_complex(rng, 3, 2, H, W),
        "maps.npy": maps,
        "mask.npy": mask,
        "img.npy": image,
        "img8.npy": image[:8, :8],
        "zeros.npy": np.zeros((H, W), np.float32),
        "negmask.npy": mask - 2 * (1 - mask),
        "slicezero.npy": np.stack([mask, np.zeros_like(mask), mask]),
        "narrow.npy": np.ones((H, W - 3), np.float32),
        "real.npy": kspace.real.astype(np.float32),
        "int.npy": np.ones((2, H, W), np.int32),
        "nan.npy": np.where(np.arange(W) == 3, np.nan, 1).astype(np.complex64)
        * np.ones((2, H, 1), np.complex64),
        "empty.npy": np.zeros((2, 0, W), np.complex64),
        "six.npy": np.ones((1, 1, 1, 2, H, W), np.complex64),
        "kzero.npy": np.zeros((2, H, W), np.complex64),
        "zeromaps.npy": np.zeros((2, H, W), np.complex64),
        "maps3.npy": random_complex(rng, 3, H, W),
        "maps2s.npy": random_complex(rng, 2, 2, H, W),
        "traj.npy": np.zeros((H, W, 2), np.float32),    # k.npy as (coils, shots, samples)
        "traj3.npy": np.zeros((3, W, 2), np.float32),
    }
    for name, array in arrays.items():
        np.save(path / name, array)
    with h5py.File(path / "d.h5", "w") as f:
        f["kspace"] = kspace
        f["maps"] = maps
        f["reconstruction_rss"] = image
    with h5py.File(path / "noks.h5", "w") as f:
        f["data"] = kspace
    _write_mrd_files(path)
    (path / "bart.cfl").write_bytes(b"\0" * 8)   # a BART pair without its header
    (path / "adir.npy").mkdir()
    (path / "ro").mkdir()
    os.chmod(path / "ro", 0o555)
    yield path
    os.chmod(path / "ro", 0o755)


def _write_mrd_files(path):
    """MRD files for the rows of ``mrgen mrd`` (written with the ismrmrd package, when it is
    installed; the rows that need them are skipped otherwise)."""
    try:
        from .mrd_files import header_xml, readout, write_mrd
    except ImportError:
        return
    try:
        line = [readout(np.ones((2, H), np.complex64))]
    except ImportError:
        return
    write_mrd(path / "nohdr.mrd.h5", None, line)
    write_mrd(path / "cart.mrd.h5", header_xml((H, W, 1)), line)
    write_mrd(path / "radial.mrd.h5", header_xml(trajectory="radial"), line)
    write_mrd(path / "rosette.mrd.h5", header_xml(trajectory="rosette"), line)


# (command line, exit code, a word the message must hold)
CASES = [
    # the table
    ("zf --mask zeros.npy k.npy out.npy", 2, "samples nothing"),
    ("mask --like d.h5 --accel 1000 out.npy", 2, "at most 16x"),
    ("mask --shape 16 16 --kind sigpy-poisson --accel 1000 out.npy", 2, "at most"),
    ("ipalm --lam nan k.npy out.npy", 2, "finite"),
    ("sense --lam nan k.npy maps.npy out.npy", 2, "finite"),
    ("zf --slice 5:2 ms.npy out.npy", 2, "empty range"),
    ("zf k.npy out.xyz", 2, "unknown suffix"),
    ("zf k.npy ro/out.npy", 2, "permission denied"),
    ("zf noks.h5 out.npy", 2, "'kspace'"),
    ("zf --quiet true k.npy out.npy", 2, "take no value"),
    # input files
    ("zf missing.h5 out.npy", 2, "no such file"),
    ("zf bart out.npy", 2, "bart.hdr is missing"),
    ("zf adir.npy out.npy", 2, "folder"),
    ("zf real.npy out.npy", 2, "must be complex"),
    ("zf int.npy out.npy", 2, "must be complex"),
    ("zf nan.npy out.npy", 2, "NaN"),
    ("zf empty.npy out.npy", 2, "empty"),
    ("zf six.npy out.npy", 2, "axes"),
    ("zf kzero.npy out.npy", 2, "all zeros"),
    ("zf --maps zeromaps.npy k.npy out.npy", 2, "zero everywhere"),
    ("zf --mask narrow.npy k.npy out.npy", 2, "does not fit"),
    ("zf --mask negmask.npy k.npy out.npy", 2, "negative"),
    ("zf --mask slicezero.npy ms.npy out.npy", 2, "slice 1"),
    ("zf --slice 9 ms.npy out.npy", 2, "out of range"),
    ("zf --slice 5:9 ms.npy out.npy", 2, "selects none"),
    ("zf --slice a ms.npy out.npy", 2, "--slice"),
    ("sense ms.npy maps2s.npy out.npy", 2, "slice"),
    ("sense k.npy maps3.npy out.npy", 2, "does not fit"),
    ("metrics img.npy missing.npy", 2, "no such file"),
    ("phantom --from missing.npy out.h5", 2, "no such file"),
    ("langevin --init missing.npy k.npy out.npy", 2, "no such file"),
    ("ipalm --model nope.pt k.npy out.npy", 2, "not a shipped model"),
    ("deepen --model nope k.npy out.npy", 2, "not a shipped model"),
    ("train prior missing.h5 out.pt", 2, "no such file"),
    ("dataset out --coils 0", 2, "--coils"),
    ("train prior d.h5 o.pt --objective em", 2, "--objective"),
    ("train prior d.h5 o.pt --head both", 2, "--head"),
    ("train prior d.h5 o.pt --dilations 1,x", 2, "--dilations 1,x: expected integers"),
    ("train prior d.h5 o.pt --dilations 0,1", 2, "--dilations 0,1: positive integers"),
    ("train prior d.h5 o.pt --patch 0", 2, "--patch"),
    ("train prior d.h5 o.pt --sigma-range 0 1", 2, "--sigma-range"),
    ("train prior d.h5 o.pt --objective ml --head local", 2, "needs --head global"),
    ("train calibrate m.pt d.h5 o.pt --sigmas a", 2, "--sigmas a: expected"),
    ("dataset out --snr nan", 2, "finite"),
    ("dataset ro/out", 2, "permission denied"),
    ("dataset img.npy", 2, "not a folder"),
    ("train calibrate nope.pt d.h5 out.pt", 2, "not a shipped model"),
    ("train calibrate prior-brain-small missing.h5 out.pt", 2, "no such file"),
    ("zf d.h5:nosuch out.npy", 2, "no dataset 'nosuch'"),
    ("ipalm --single-coil ms.npy out.npy", 2, "--single-coil"),
    ("ipalm --traj traj.npy k.npy out.npy", 2, "--traj needs --maps"),
    ("langevin --traj traj.npy k.npy out.npy", 2, "--traj needs --maps"),
    ("zf --traj traj3.npy k.npy out.npy", 2, "do not fit the trajectory"),
    ("zf --traj missing.npy k.npy out.npy", 2, "no such file"),
    ("espirit --traj traj.npy --mask mask.npy k.npy out.npy", 2, "--mask and --traj"),
    ("espirit --traj traj.npy --size 8 8 k.npy out.npy", 2, "--size and --traj"),
    ("zf --grid 8 8 k.npy out.npy", 2, "--grid needs --traj"),
    ("zf --traj traj.npy --grid 0 8 k.npy out.npy", 2, "--grid"),
    ("sense --traj traj.npy --grid 4 4 k.npy maps.npy out.npy", 2, "does not match the maps"),
    ("phantom out.npy --grid 8 8", 2, "--grid needs --traj"),
    ("phantom out.npy --traj traj.npy --grid 8 8 --size 8 8", 2, "--grid and --size"),
    ("zf --traj traj.npy --mask mask.npy k.npy out.npy", 2, "--mask and --traj"),
    ("sense --traj traj.npy --mask mask.npy k.npy maps.npy out.npy", 2, "--mask and --traj"),
    ("espirit --size 2 2 k.npy out.npy", 2, "--size 2 2: smaller than the k-space"),
    ("traj out.npy --samples 0", 2, "--samples"),
    ("traj out.npy --kind rosette", 2, "--kind"),
    ("metrics img.npy k.npy", 2, "slice"),
    ("langevin --prior-only k.npy out.npy extra.npy", 2, "expected OUT"),
    ("langevin --init img8.npy --maps maps.npy k.npy out.npy", 2, "does not fit"),
    ("langevin --model deepen-brain-small --init img8.npy --maps maps.npy k.npy out.npy", 2,
     "does not fit"),
    # outputs
    ("zf k.npy k.npy", 2, "overwrite"),
    ("zf k.npy adir.npy", 2, "is a folder"),
    ("zf k.npy nodir/out.npy", 2, "does not exist"),
    ("zf k.npy out.h5:", 2, "empty dataset name"),
    ("phantom --size 16 16 --maps-out - -", 2, "standard output"),
    ("sense - - out.npy", 2, "standard input"),
    ("espirit --eigenvalues out.npy k.npy out.npy", 2, "two outputs"),
    ("langevin k.npy k.npy", 2, "overwrite"),
    ("langevin --nonneg --sampler mala k.npy out.npy", 2, "Metropolis"),
    ("langevin --sampler hmc k.npy out.npy", 2, "expected auto | ula | mala"),
    ("ipalm --energy-log nodir/e.txt k.npy out.npy", 2, "does not exist"),
    ("show img.npy out.jpg", 2, "PNG"),
    ("show img.npy ro/out.png", 2, "permission denied"),
    ("train prior d.h5 d.h5", 2, "overwrite"),
    ("train deepen d.h5 nodir/out.pt", 2, "does not exist"),
    # option values: finiteness and declared ranges
    ("mask --seed -1 --shape 16 16 --accel 4 out.npy", 2, "--seed"),
    ("phantom --size 16 16 --coils 0 out.h5", 2, "--coils"),
    ("phantom --size 16 16 --noise nan out.h5", 2, "finite"),
    ("mask --shape 16 16 --accel inf out.npy", 2, "finite"),
    ("mask --shape 16 16 --accel 4 --center 1.5 out.npy", 2, "--center"),
    ("mask --shape 0 16 --accel 4 out.npy", 2, "--shape"),
    ("zf --crop 0 0 k.npy out.npy", 2, "--crop"),
    ("espirit --threshold -1 k.npy out.npy", 2, "--threshold"),
    ("espirit --eigen-crop nan k.npy out.npy", 2, "--eigen-crop"),
    ("sense --iters 0 k.npy maps.npy out.npy", 2, "--iters"),
    ("sense --tol -inf k.npy maps.npy out.npy", 2, "finite"),
    ("sense --iters x k.npy maps.npy out.npy", 2, "--iters"),
    ("ipalm --lam -3 k.npy out.npy", 2, "positive"),
    ("ipalm --lam x k.npy out.npy", 2, "a number or auto"),
    ("ipalm --mu inf k.npy out.npy", 2, "finite"),
    ("ipalm --iters -5 k.npy out.npy", 2, "--iters"),
    ("langevin --samples 0 k.npy out.npy", 2, "--samples"),
    ("langevin --step nan k.npy out.npy", 2, "finite"),
    ("langevin --noise-std -1 k.npy out.npy", 2, "--noise-std"),
    ("convdecoder --lr -1 k.npy out.npy", 2, "--lr"),
    ("convdecoder --iters 0 k.npy out.npy", 2, "--iters"),
    ("convdecoder --holdout 1 k.npy out.npy", 2, "--holdout"),
    ("convdecoder --patience -1 k.npy out.npy", 2, "--patience"),
    ("convdecoder --preset gpu k.npy out.npy", 2, "--preset"),
    ("djsense --mode l2 --lam nan k.npy out.npy", 2, "finite"),
    ("djsense --mode l2 --map-kernel 0 3 k.npy out.npy", 2, "--map-kernel"),
    ("deepen --model deepen-brain-small --eps -1 k.npy out.npy", 2, "--eps"),
    ("deepen --model deepen-brain-small --chunk 0 k.npy out.npy", 2, "--chunk"),
    ("deepen --model deepen-brain-small --keep 0 k.npy out.npy", 2, "--keep"),
    ("metrics --null-space --support-threshold 2 k.npy maps.npy", 2, "--support-threshold"),
    ("show --percentile 0 img.npy out.png", 2, "--percentile"),
    ("show --window 0 nan img.npy out.png", 2, "finite"),
    ("train prior --lr nan d.h5 out.pt", 2, "finite"),
    ("train deepen --steps -1 d.h5 out.pt", 2, "--steps"),
    ("train djsense --batch 0 d.h5 out.pt", 2, "--batch"),
    ("train calibrate --mu 0 prior-brain-small d.h5 out.pt", 2, "--mu"),
    # words
    ("phantom --kind cat out.h5", 2, "--kind"),
    ("espirit --phase-ref coil k.npy out.npy", 2, "--phase-ref"),
    ("ipalm --reg l1 k.npy out.npy", 2, "--reg"),
    ("langevin --reg l1 k.npy out.npy", 2, "--reg"),
    ("deepen --model deepen-brain-small --mode mmse k.npy out.npy", 2, "--mode"),
    ("djsense --mode l1 k.npy out.npy", 2, "--mode"),
    ("show --part abs img.npy out.png", 2, "--part"),
    ("train djsense --mode x d.h5 out.pt", 2, "--mode"),
    ("train deepen --activation tanh d.h5 out.pt", 2, "--activation"),
    ("train calibrate --grid 1,nan prior-brain-small d.h5 out.pt", 2, "--grid"),
    ("train calibrate prior-brain-small out.pt", 2, "expected MODEL.pt"),
    ("train calibrate prior-brain-small d.h5 out.npy", 2, "must end in .pt"),
    # raw data in
    ("mrd nohdr.mrd.h5 out.h5", 2, "nohdr.mrd.h5: no ISMRMRD header"),
    ("mrd radial.mrd.h5 out.h5", 2, "radial.mrd.h5: non-Cartesian trajectory 'radial'"),
    ("mrd rosette.mrd.h5 out.h5", 2, "rosette.mrd.h5: unknown trajectory 'rosette'"),
    ("mrd d.h5 out.h5", 2, "d.h5: not an ISMRMRD/MRD file"),
    ("mrd k.npy out.h5", 2, "k.npy: not a readable HDF5 file"),
    ("mrd cart.mrd.h5 out.npy", 2, "give an .h5 name"),
    ("mrd --average x cart.mrd.h5 out.h5", 2, "--average x"),
    ("mrd --average 3 cart.mrd.h5 out.h5", 2, "--average 3"),
    ("mrd --prewhiten cart.mrd.h5 out.h5", 2, "no noise scan"),
    # images out
    ("zf --format xyz k.npy out.npy", 2, "--format xyz: expected"),
    ("zf --format nifti k.npy -", 2, "standard output (-) takes a .npy stream"),
    ("zf --format dicom k.npy ro/series", 2, "permission denied"),
    ("espirit k.npy maps.nii", 2, "maps.nii: NIfTI and DICOM outputs hold images"),
    ("espirit --format dicom k.npy maps.npy", 2, "it holds maps or k-space (--format dicom"),
    ("ipalm --reg tv --maps-out m.nii.gz k.npy out.nii", 2, "--maps-out holds maps"),
    ("phantom k.dcm", 2, "k.dcm: NIfTI and DICOM outputs hold images"),
    ("traj t.nii", 2, "t.nii: NIfTI and DICOM"),
]


@pytest.mark.parametrize("line, code, word", CASES, ids=[c[0] for c in CASES])
def test_bad_input(folder, monkeypatch, line, code, word):
    monkeypatch.chdir(folder)
    if ".mrd.h5" in line and not any(folder.glob("*.mrd.h5")):
        pytest.skip("the ismrmrd package writes the MRD files of this row")
    if os.access(folder / "ro", os.W_OK):   # root writes anywhere: deny ro/ as a user would
        real_access = os.access
        monkeypatch.setattr(os, "access", lambda p, mode, *a, **k: False
                            if str(p).rstrip("/").endswith("ro") and mode & os.W_OK
                            else real_access(p, mode, *a, **k))
    before = _listing(folder)
    result = invoke(*line.split())
    assert result.exit_code == code, (line, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, (line, result.stderr)
    assert lines[0].startswith("mrgen "), lines[0]
    assert word in lines[0], (line, lines[0])
    assert "Traceback" not in result.stderr
    assert _listing(folder) == before, f"{line} left files behind"


def _listing(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_corpus_covers_every_command():
    import typer

    from commands.main import app
    from commands.manpages import _leaf_commands

    names = {name for name, _ in _leaf_commands(typer.main.get_command(app))}
    covered = {" ".join(line.split()[:2]) if line.startswith("train ") else line.split()[0]
               for line, _, _ in CASES}
    assert names <= covered, names - covered
    assert len(CASES) >= 30


def test_missing_input_answers_before_torch(tmp_path):
    """Fail fast: a missing input is reported without importing torch (or h5py)."""
    import subprocess
    import sys

    code = ("import sys; from typer.testing import CliRunner; from commands.main import app; "
            "r = CliRunner().invoke(app, ['zf', 'missing.h5', 'out.npy']); "
            "print(r.exit_code, r.stderr.strip()); "
            "print(','.join(m for m in ('torch', 'h5py', 'sigpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=tmp_path, env={**os.environ, "PYTHONPATH": _root()})
    assert out.returncode == 0, out.stderr
    first, heavy = out.stdout.splitlines()
    assert first == "2 mrgen zf: missing.h5: no such file"
    assert heavy == ""
    assert not (tmp_path / "out.npy").exists()


def test_bad_options_answer_before_torch(tmp_path):
    import subprocess
    import sys

    (tmp_path / "k.npy").write_bytes(b"")   # never read: the option check comes first
    code = ("import sys; from typer.testing import CliRunner; from commands.main import app; "
            "r = CliRunner().invoke(app, ['sense', '--lam', 'nan', 'k.npy', 'k.npy', 'o.npy']); "
            "print(r.exit_code, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=tmp_path, env={**os.environ, "PYTHONPATH": _root()})
    assert out.stdout.split() == ["2", "False"], out.stdout + out.stderr


def _root():
    from pathlib import Path

    return str(Path(__file__).resolve().parent.parent)


def test_flags_take_no_value_in_help():
    result = invoke("zf", "--help")
    assert result.exit_code == 0
    rows = [row for row in result.stdout.splitlines() if "--quiet" in row or "--complex" in row]
    assert rows and not any("<bool>" in row for row in rows), rows


def test_every_file_argument_is_declared():
    """Each command's positional arguments and --*-out / file options are declared to
    @command, so that the checks before the body see them."""
    import inspect
    from typing import get_args

    import typer

    import commands.main  # noqa: F401  (registers every command)
    from commands import (convdecoder, deepen, djsense, espirit, ipalm, langevin, mask, metrics,
                          mrd, phantom, sense, show, train_calibrate, train_deepen,
                          train_djsense, train_prior, zf)

    funcs = [getattr(m, name) for m in (convdecoder, deepen, djsense, espirit, ipalm, langevin,
                                        mask, metrics, mrd, phantom, sense, show,
                                        train_calibrate, train_deepen, train_djsense,
                                        train_prior, zf)
             for name in dir(m) if hasattr(getattr(m, name), "checks")]
    assert len(funcs) == 17
    for func in funcs:
        declared = func.checks.names()
        for name, param in inspect.signature(func).parameters.items():
            info = next((a for a in get_args(param.annotation)[1:]
                         if isinstance(a, (typer.models.ArgumentInfo,
                                           typer.models.OptionInfo))), None)
            positional = isinstance(info, typer.models.ArgumentInfo)
            fileish = name.endswith("_out") or name in ("mask", "maps", "init", "model", "var",
                                                        "checkpoint", "samples_png", "like",
                                                        "from_", "eigenvalues", "energy_log")
            spec = (func.__name__, name) in (("train_deepen", "mask"), ("train_djsense", "mask"))
            if (positional or fileish) and not spec:   # (train's --mask is KIND:ACCEL)
                assert name in declared, f"{func.__name__}: {name} is not declared to @command"


def test_declared_words_match_the_library():
    import mrgen.phantom
    import mrgen.show
    from commands import phantom, show

    assert set(phantom.phantom.checks.choices["kind"]) == set(mrgen.phantom.KINDS)
    assert set(show.show.checks.choices["part"]) == set(mrgen.show.PARTS)
