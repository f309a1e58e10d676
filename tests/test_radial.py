"""The commands on a small radial phantom (#17): traj -> phantom --traj -> zf, sense, ipalm
--reg tv, langevin with fixed maps, and the refusals of modes without a non-Cartesian version.
PSNR floors sit about 1.5 dB under the measured values (48 x 48, 4 coils, 20 golden spokes
of 96 samples: zf 23.0, sense 28.8, ipalm TV 29.8)."""

import shutil
import subprocess

import numpy as np
import pytest

from .conftest import invoke


def psnr(path, truth):
    image = np.abs(np.load(path))
    return 10 * np.log10(truth.max() ** 2 / np.mean((image - truth) ** 2))


@pytest.fixture(scope="module")
def radial_scan(tmp_path_factory):
    folder = tmp_path_factory.mktemp("radial")
    run(folder, "traj", "t.cfl", "--kind", "golden", "--samples", "96", "--shots", "20",
        "--size", "48")
    run(folder, "phantom", "k.cfl", "--traj", "t.cfl", "--size", "48", "48", "--coils", "4",
        "--noise", "0.002", "--maps-out", "maps.npy", "--image-out", "truth.npy")
    return folder, np.abs(np.load(folder / "truth.npy"))


def run(folder, *args):
    result = invoke(*[folder / a if str(a).endswith((".npy", ".cfl")) else a for a in args])
    assert result.exit_code == 0, result.stderr
    return result


def test_the_files_are_bart_layout(radial_scan):
    folder, _ = radial_scan
    dims = (folder / "k.hdr").read_text().splitlines()[1].split()
    assert dims[:4] == ["1", "96", "20", "4"]
    dims = (folder / "t.hdr").read_text().splitlines()[1].split()
    assert dims[:3] == ["3", "96", "20"]


def test_reconstructions(radial_scan, one_thread):
    folder, truth = radial_scan
    run(folder, "zf", "k.cfl", "zf.npy", "--traj", "t.cfl")
    run(folder, "sense", "k.cfl", "maps.npy", "s.npy", "--traj", "t.cfl")
    run(folder, "ipalm", "k.cfl", "ip.npy", "--traj", "t.cfl", "--maps", "maps.npy", "--reg",
        "tv", "--lam", "300", "--iters", "60")
    scores = {name: psnr(folder / f"{name}.npy", truth) for name in ("zf", "s", "ip")}
    assert scores["zf"] > 21.3 and scores["s"] > 27.3 and scores["ip"] > 28.3, scores
    assert scores["ip"] > scores["s"] + 0.5, scores


def test_espirit_from_the_gridded_centre(radial_scan, one_thread):
    """Maps of `espirit --traj` (calibration: the k-space centre of the coils' least-squares
    images) serve CG-SENSE within 1 dB of the true maps (measured 28.4 dB against 28.9) and
    are the true maps up to a phase per pixel in the object (|correlation| median 1.0000,
    5th percentile 0.9998)."""
    folder, truth = radial_scan
    result = run(folder, "espirit", "k.cfl", "em.npy", "--traj", "t.cfl")
    assert "calibration region: 24x24" in result.stderr
    run(folder, "sense", "k.cfl", "em.npy", "se.npy", "--traj", "t.cfl")
    run(folder, "sense", "k.cfl", "maps.npy", "st.npy", "--traj", "t.cfl")
    estimated, true = psnr(folder / "se.npy", truth), psnr(folder / "st.npy", truth)
    assert estimated > true - 1.0, (estimated, true)
    maps, true_maps = np.load(folder / "em.npy"), np.load(folder / "maps.npy")
    assert maps.shape == true_maps.shape == (4, 48, 48)
    correlation = np.abs((maps.conj() * true_maps).sum(0)) / (
        np.linalg.norm(maps, axis=0) * np.linalg.norm(true_maps, axis=0) + 1e-12)
    inside = correlation[truth > 0.1 * truth.max()]
    assert np.median(inside) > 0.9995 and np.percentile(inside, 5) > 0.999, inside


def test_espirit_from_a_cartesian_calibration_scan(radial_scan, one_thread):
    """A separate 24 x 24 Cartesian scan of the same object and coils, padded to the radial
    scan's grid by --size: CG-SENSE of the radial data with its maps at least as good as with
    the true maps (measured 30.1 dB against 28.9: the eigenvalue crop zeroes the background)."""
    folder, truth = radial_scan
    run(folder, "phantom", "cart.npy", "--size", "48", "48", "--coils", "4", "--noise",
        "0.002")
    np.save(folder / "calib.npy", np.load(folder / "cart.npy")[:, 12:36, 12:36])
    run(folder, "espirit", "calib.npy", "cm.npy", "--size", "48", "48")
    assert np.load(folder / "cm.npy").shape == (4, 48, 48)
    run(folder, "sense", "k.cfl", "cm.npy", "sc.npy", "--traj", "t.cfl")
    run(folder, "sense", "k.cfl", "maps.npy", "st.npy", "--traj", "t.cfl")
    assert psnr(folder / "sc.npy", truth) > psnr(folder / "st.npy", truth) - 0.5


def test_langevin_with_fixed_maps(radial_scan, one_thread):
    folder, truth = radial_scan
    run(folder, "langevin", "k.cfl", "lv.npy", "--traj", "t.cfl", "--maps", "maps.npy",
        "--ipalm-iters", "40", "--burn-in", "10", "--samples", "3", "--thin", "2",
        "--lam", "300")
    assert psnr(folder / "lv.npy", truth) > 26


def test_few_spokes_keep_the_trajectory_grid(tmp_path, one_thread):
    """3 spokes of a 64 matrix reach only 27.3 along H: the grid is still 64 x 64 (square,
    from max |k|), for phantom --traj and zf --traj alike, as `mrgen traj` reports; --grid
    and the maps give the same grid (measured zf 17.3 dB, sense 19.0 dB)."""
    run(tmp_path, "traj", "t.npy", "--shots", "3", "--samples", "64", "--size", "64")
    run(tmp_path, "phantom", "k.npy", "--traj", "t.npy", "--coils", "4", "--image-out",
        "truth.npy", "--maps-out", "maps.npy")
    truth = np.abs(np.load(tmp_path / "truth.npy"))
    assert truth.shape == (64, 64)
    run(tmp_path, "zf", "k.npy", "zf.npy", "--traj", "t.npy")
    run(tmp_path, "zf", "k.npy", "zg.npy", "--traj", "t.npy", "--grid", "64", "64")
    run(tmp_path, "sense", "k.npy", "maps.npy", "s.npy", "--traj", "t.npy")
    assert np.load(tmp_path / "zf.npy").shape == (64, 64)
    assert np.array_equal(np.load(tmp_path / "zf.npy"), np.load(tmp_path / "zg.npy"))
    assert psnr(tmp_path / "zf.npy", truth) > 16.3 and psnr(tmp_path / "s.npy", truth) > 18.0
    for extra, message in ((("--grid", "48", "48"), "beyond the 48-pixel grid"),
                           (("--maps", "maps.npy", "--grid", "32", "64"), "does not match")):
        result = invoke("zf", tmp_path / "k.npy", tmp_path / "o.npy", "--traj",
                        tmp_path / "t.npy", *[tmp_path / e if e.endswith(".npy") else e
                                              for e in extra])
        assert result.exit_code == 2 and message in result.stderr, result.stderr
        assert not (tmp_path / "o.npy").exists()


def test_langevin_step_is_checked_against_the_nufft_norm(radial_scan):
    """--step 0.005 with --lam 300 passes the Cartesian bound (step x lam = 1.5 < 2) but not
    the NUFFT's: ||A^H A|| is 32 here, so ULA would diverge; refused before any iPALM run."""
    folder, _ = radial_scan
    result = invoke("langevin", folder / "k.cfl", folder / "o.npy", "--traj", folder / "t.cfl",
                    "--maps", folder / "maps.npy", "--lam", "300", "--step", "0.005")
    assert result.exit_code == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--step 0.005" in lines[0] and "||A^H A||" in lines[0], lines
    assert not (folder / "o.npy").exists()


def test_joint_maps_are_refused(radial_scan):
    folder, _ = radial_scan
    for command in ("ipalm", "langevin"):
        result = invoke(command, folder / "k.cfl", folder / "o.npy", "--traj", folder / "t.cfl")
        assert result.exit_code == 2
        assert "--traj needs --maps" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
        assert not (folder / "o.npy").exists()


@pytest.mark.bart
@pytest.mark.skipif(shutil.which("bart") is None, reason="needs bart")
def test_bart_reads_our_files(radial_scan, tmp_path):
    """bart's adjoint NUFFT of our samples at our trajectory is ours (to BART's accuracy)."""
    folder, truth = radial_scan
    subprocess.run(["bart", "nufft", "-a", "-d", "48:48:1", str(folder / "t"),
                    str(folder / "k"), str(tmp_path / "a")], check=True, capture_output=True)
    import torch

    from mrgen import io
    from mrgen.io.trajectory import read_samples, read_trajectory
    from mrgen.nufft import Nufft

    coils = io.read_array(str(tmp_path / "a.cfl"), io.roles.COIL_IMAGES)
    assert coils.shape == (4, 48, 48)
    ours = Nufft(torch.from_numpy(read_trajectory(str(folder / "t.cfl"))), (48, 48)).adjoint(
        torch.from_numpy(read_samples(str(folder / "k.cfl")))).numpy()
    assert np.linalg.norm(coils - ours) / np.linalg.norm(ours) < 0.05


@pytest.mark.bart
@pytest.mark.skipif(shutil.which("bart") is None, reason="needs bart")
def test_espirit_traj_is_bart_ecalib_on_its_inverse_nufft(radial_scan, tmp_path):
    """`mrgen espirit --traj` = bart nufft -i, fft, ecalib -m1 (|correlation| in the object:
    median 0.99999, 5th percentile 0.9999 measured)."""
    folder, truth = radial_scan
    run(folder, "espirit", "k.cfl", "em.npy", "--traj", "t.cfl")
    for args in (["nufft", "-i", "-d48:48:1", folder / "t", folder / "k", tmp_path / "c"],
                 ["fft", "-u", "3", tmp_path / "c", tmp_path / "g"],
                 ["ecalib", "-m1", tmp_path / "g", tmp_path / "bm"]):
        subprocess.run(["bart", *map(str, args)], check=True, capture_output=True)
    from mrgen import io

    bart = io.read_array(str(tmp_path / "bm.cfl"), io.roles.MAPS)
    ours = np.load(folder / "em.npy")
    correlation = np.abs((ours.conj() * bart).sum(0)) / (
        np.linalg.norm(ours, axis=0) * np.linalg.norm(bart, axis=0) + 1e-12)
    inside = correlation[truth > 0.1 * truth.max()]
    assert np.median(inside) > 0.9999 and np.percentile(inside, 5) > 0.999


def test_auto_device_runs_non_cartesian_data_on_the_cpu_without_cufinufft(radial_scan,
                                                                          monkeypatch):
    """Where CUDA is there but the NUFFT cannot run on it, --device auto takes the CPU for
    non-Cartesian data and says why; Cartesian jobs and an explicit --device cuda keep CUDA."""
    import torch

    import mrgen.nufft
    from mrgen.device import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(mrgen.nufft, "cuda_backend_problem",
                        lambda: "cufinufft is not installed (pip install cufinufft)")
    lines = []
    assert resolve_device("auto", nufft=True, log=lines.append).type == "cpu"
    assert lines == ["--device auto: cufinufft is not installed (pip install cufinufft); the "
                     "non-Cartesian data run on the CPU"]
    assert resolve_device("auto").type == "cuda"
    assert resolve_device("cuda", nufft=True).type == "cuda"
    folder, truth = radial_scan
    result = run(folder, "zf", "k.cfl", "auto.npy", "--traj", "t.cfl")
    assert "the non-Cartesian data run on the CPU" in result.stderr
    assert psnr(folder / "auto.npy", truth) > 21.3
