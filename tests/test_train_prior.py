"""mrgen train prior: maximum-likelihood training of the energy prior, end to end."""

import os
import socket

import numpy as np
import pytest
import torch

from mrgen.errors import UsageError
from mrgen.priors.energy import EnergyConfig
from mrgen.model_files import load_model, store_fitted_entries
from mrgen.training.data import central_range, load_training_images, normalise_slices
from mrgen.training.distributed import DistContext, init_distributed, step_generator
from mrgen.training.engine import EngineOptions, load_training_checkpoint
from mrgen.training.prior import (PriorConfig, PriorTraining, chain_length, load_prior,
                                  permute_pixels, train_prior)

from .conftest import invoke


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny convolutions: one thread is fastest, and the machine is shared."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


SMALL = ["--preset", "cpu-ml", "--crop", "32", "--width", "4", "--stages", "3", "--buffer", "64", "--batch", "8",
         "--chain-max", "10", "--chain-tau", "3", "--lr", "1e-3"]
ARCH = EnergyConfig(base_width=4, growth=1.75, stages=3, crop=32)
CONFIG = PriorConfig(batch=8, buffer=64, chain_max=10, chain_tau=3.0, lr=1e-3)


def _images(count=8):
    from mrgen.phantom import make_phantom

    phantom = make_phantom(size=(32, 32), slices=count, coils=1, phase=0)
    images, _ = normalise_slices(np.abs(phantom.image), "max")
    return torch.from_numpy(images)


@pytest.fixture(scope="module")
def phantom_h5(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "ph.h5"
    result = invoke("phantom", path, "--size", "40", "40", "--slices", "5", "--coils", "2")
    assert result.exit_code == 0, result.stderr
    return path


def test_schedule_permutation_and_initial_buffer():
    assert chain_length(0, 500, 1000) == 5                     # 1% of J_max at the start
    assert chain_length(1000, 500, 1000) == int(np.ceil(500 * (1 - np.exp(-1) + 0.01)))
    assert chain_length(10**6, 500, 1000) == 505
    images = _images(4)
    shuffled = permute_pixels(images, torch.Generator().manual_seed(0))
    assert torch.equal(shuffled.flatten(1).sort(1).values, images.flatten(1).sort(1).values)
    assert not torch.equal(shuffled, images)
    method = PriorTraining(images, ARCH, CONFIG, DistContext(), seed=0)
    half = CONFIG.buffer // 2
    rows = images.flatten(1)
    data_part = method.buffer[:half].flatten(1)
    assert all((rows == row).all(1).any() for row in data_part)     # training slices
    assert not any((rows == row).all(1).any() for row in method.buffer[half:].flatten(1))


def test_short_training_lowers_the_energy_of_data():
    images = _images()
    config = PriorConfig(batch=8, buffer=64, chain_max=10, chain_tau=1000.0, lr=1e-3)
    method = PriorTraining(images, ARCH, config, DistContext(), seed=0)
    method.bind(DistContext())
    noise = permute_pixels(images, torch.Generator().manual_seed(5))

    def contrast():  # mean energy of pixel-permuted images minus that of the data
        with torch.no_grad():
            return float(method.model(noise).mean() - method.model(images).mean())

    before = contrast()
    losses = [method.train_step(s, step_generator(0, 0, s, "cpu"))["loss"] for s in range(30)]
    assert np.mean(losses[-5:]) < np.mean(losses[:5])    # the energy gap goes down ...
    assert np.mean(losses[-5:]) < 0                      # ... below zero: data below samples
    assert contrast() > before + 0.02                    # data now more probable than noise


def test_cli_trains_and_writes_a_self_describing_model(tmp_path, phantom_h5):
    out = tmp_path / "prior.pt"
    png = tmp_path / "samples.png"
    result = invoke("train", "prior", phantom_h5, out, *SMALL, "--steps", "4",
                    "--samples-png", png, "--png-every", "2", "--central-slices", "3")
    assert result.exit_code == 0, result.stderr
    assert "5" not in result.stdout and result.stdout == ""  # reports go to stderr
    assert "3 training slices" in result.stderr and f"wrote {out}" in result.stderr
    model, meta = load_prior(out)
    assert meta["kind"] == "energy-prior" and meta["architecture"] == ARCH.to_dict()
    assert meta["normalisation"] == "each slice divided by its maximum"
    training = meta["training"]
    assert training["steps"] == 4 and training["command"].startswith("mrgen")
    assert training["data"]["files"][0]["slices"] == [1, 4]   # the 3 middle slices of 5
    assert training["hyperparameters"]["batch"] == 8 and training["seed"] == 0
    ckpt = load_training_checkpoint(tmp_path / "prior.ckpt")
    assert ckpt["step"] == 4 and ckpt["ranks"][0]["method"]["buffer"].shape == (64, 32, 32)
    x = _images(2)
    reference, _ = load_model(tmp_path / "prior.ckpt")
    assert torch.equal(model(x), reference(x))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    store_fitted_entries(out, {"lambda_fit": {"slope": -2.71e8, "intercept": 0.5477, "mu": 10.0}})
    assert load_prior(out)[1]["fitted"]["lambda_fit"]["mu"] == 10.0


def test_kill_then_resume_is_bit_identical(tmp_path, phantom_h5, monkeypatch):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    full = invoke("train", "prior", phantom_h5, tmp_path / "a" / "p.pt", *SMALL,
                  "--steps", "8", "--checkpoint-every", "2")
    assert full.exit_code == 0, full.stderr

    original = PriorTraining.train_step

    def killed(self, step, generator):
        if step == 5:
            raise KeyboardInterrupt
        return original(self, step, generator)

    monkeypatch.setattr(PriorTraining, "train_step", killed)
    first = invoke("train", "prior", phantom_h5, tmp_path / "b" / "p.pt", *SMALL,
                   "--steps", "8", "--checkpoint-every", "2")
    assert first.exit_code == 130 and "interrupted" in first.stderr
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["p.ckpt"]  # nothing partial
    assert load_training_checkpoint(tmp_path / "b" / "p.ckpt")["step"] == 4
    monkeypatch.undo()

    again = invoke("train", "prior", phantom_h5, tmp_path / "b" / "p.pt", *SMALL,
                   "--steps", "8", "--checkpoint-every", "2")
    assert again.exit_code == 2 and "--resume" in again.stderr  # never clobbers a checkpoint
    rest = invoke("train", "prior", phantom_h5, tmp_path / "b" / "p.pt", *SMALL,
                  "--steps", "8", "--checkpoint-every", "2", "--resume")
    assert rest.exit_code == 0, rest.stderr
    a = load_training_checkpoint(tmp_path / "a" / "p.ckpt")
    b = load_training_checkpoint(tmp_path / "b" / "p.ckpt")
    assert a["step"] == b["step"] == 8
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    assert torch.equal(a["ranks"][0]["method"]["buffer"], b["ranks"][0]["method"]["buffer"])
    assert a["scheduler"] == b["scheduler"]
    model_a, _ = load_prior(tmp_path / "a" / "p.pt")
    model_b, _ = load_prior(tmp_path / "b" / "p.pt")
    assert all(torch.equal(p, q) for p, q in zip(model_a.parameters(), model_b.parameters()))

    other = invoke("train", "prior", phantom_h5, tmp_path / "b" / "p.pt", *SMALL,
                   "--steps", "9", "--resume", "--data-noise", "0.1")
    assert other.exit_code == 2 and "data_noise" in other.stderr


@pytest.mark.parametrize("args, message", [
    (["bad.npy"], "bad.npy: "),
    (["missing.h5"], "missing.h5: no such file"),
    (["--batch", "0"], "--batch 0"),
    (["--buffer", "10"], "--buffer 10"),
    (["--normalise", "mean"], "--normalise mean"),
    (["--milestones", "10,x"], "--milestones"),
    (["--crop", "0"], "--crop 0"),
])
def test_cli_errors_are_one_line(tmp_path, phantom_h5, args, message):
    (tmp_path / "bad.npy").write_text("not an array")
    data = [str(tmp_path / args[0])] if args[0].endswith((".npy", ".h5")) else [str(phantom_h5)]
    options = args[1:] if args[0].endswith((".npy", ".h5")) else args
    result = invoke("train", "prior", *data, tmp_path / "o.pt", *SMALL, *options,
                    "--steps", "1")
    assert result.exit_code == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mrgen train prior: ") and message in lines[0]
    assert not (tmp_path / "o.pt").exists()


def test_output_must_not_overwrite_data(tmp_path):
    np.save(tmp_path / "d.npy", _images(2).numpy())
    result = invoke("train", "prior", tmp_path / "d.npy", tmp_path / "d.npy", *SMALL)
    assert result.exit_code == 2 and "overwrite" in result.stderr


def test_training_images_from_stacks_and_volumes(tmp_path, phantom_h5):
    stack = np.zeros((3, 20, 24), np.float32)
    stack[:, 5:15, 6:18] = np.arange(1, 4, dtype=np.float32)[:, None, None] * 2
    stack[1, 6, 7] = -1.0
    np.save(tmp_path / "s.npy", stack)
    np.save(tmp_path / "one.npy", (1j * stack[0]).astype(np.complex64))
    np.save(tmp_path / "flat.npy", np.full((2, 8, 8), 0.0, np.float32))
    loaded = load_training_images([tmp_path / "s.npy", tmp_path / "one.npy", phantom_h5,
                                   tmp_path / "flat.npy"], central=3, crop=16)
    assert loaded.images.shape == (3 + 1 + 3, 16, 16)
    assert np.allclose(loaded.images.max(axis=(1, 2)), 1.0)
    assert loaded.description["skipped_constant"] == 2
    assert [f["used"] for f in loaded.description["files"]] == [3, 1, 3, 0]
    minmax = load_training_images([tmp_path / "s.npy"], crop=16, normalise="minmax")
    assert np.allclose(minmax.images.min(axis=(1, 2)), 0.0)
    assert np.allclose(minmax.images.max(axis=(1, 2)), 1.0)
    assert central_range(40, 11) == (15, 26) and central_range(5, 11) == (0, 5)
    with pytest.raises(UsageError):
        load_training_images([tmp_path / "s.npy"], normalise="mean")


# ---------------------------------------------------------------------------------------------
# Several processes (DistributedDataParallel, gloo on CPU)


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ddp_worker(rank, world, port, folder, data):
    from pathlib import Path

    from typer.testing import CliRunner

    from commands.main import app

    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    folder = Path(folder)
    context = init_distributed(torch.device("cpu"))
    assert context.distributed and context.rank == rank and context.backend == "gloo"
    options = EngineOptions(steps=4, seed=3, checkpoint=folder / "lib.ckpt", checkpoint_every=2)
    _, method = train_prior(_images(), {"normalisation": "max"}, ARCH, CONFIG,
                            folder / "lib.pt", options, context)
    torch.save({"model": method.model.state_dict(), "buffer": method.buffer},
               folder / f"rank{rank}.state")
    # the command under torchrun: it joins the existing group
    result = CliRunner().invoke(app, ["train", "prior", data, str(folder / "cli.pt"), *SMALL,
                                      "--steps", "2"])
    assert result.exit_code == 0, result.stderr
    context.close()  # barrier, and leave the group this worker created


def test_distributed_training_on_two_processes(tmp_path, phantom_h5):
    import torch.multiprocessing as mp

    mp.spawn(_ddp_worker, args=(2, _free_port(), str(tmp_path), str(phantom_h5)), nprocs=2,
             join=True)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["cli.ckpt", "cli.pt", "lib.ckpt", "lib.pt", "rank0.state", "rank1.state"]
    states = [torch.load(tmp_path / f"rank{r}.state") for r in range(2)]
    for key in states[0]["model"]:
        assert torch.equal(states[0]["model"][key], states[1]["model"][key]), key
    assert states[0]["buffer"].shape == (32, 32, 32)              # the buffer is split
    assert not torch.equal(states[0]["buffer"], states[1]["buffer"])
    ckpt = load_training_checkpoint(tmp_path / "lib.ckpt")
    assert ckpt["world_size"] == 2 and len(ckpt["ranks"]) == 2
    for rank in range(2):
        assert torch.equal(ckpt["ranks"][rank]["method"]["buffer"], states[rank]["buffer"])
    assert all(torch.equal(ckpt["model"][k], states[0]["model"][k]) for k in ckpt["model"])
    _, meta = load_prior(tmp_path / "cli.pt")
    assert meta["training"]["processes"] == 2 and meta["training"]["steps"] == 2
