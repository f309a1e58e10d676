"""The shared training engine: resume, kills, NaN guard, progress, hooks, model files, AdaBelief."""

import math
import struct

import numpy as np
import pytest
import torch

from mrgen.errors import DataError, UsageError
from mrgen.model_files import (load_model, model_description, read_model, save_model,
                               store_fitted_entries)
from mrgen.optim import AdaBelief
from mrgen.training.distributed import (DistContext, derive_seed, epoch_indices,
                                        step_generator)
from mrgen.training.engine import (EngineOptions, Hook, TrainingMethod,
                                   load_training_checkpoint, png_hook, run_training)

@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny convolutions: one thread is fastest, and the machine is shared."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


TRUE_W = torch.tensor([1.0, -2.0, 0.5])


class Toy(TrainingMethod):
    """Linear regression on fresh random data each step, with a method state (a running sum
    of the draws) and failure injection."""

    def __init__(self, bad_step=None, fail_step=None):
        gen = torch.Generator().manual_seed(0)
        self.model = torch.nn.Linear(3, 1)
        with torch.no_grad():
            for p in self.model.parameters():
                p.copy_(torch.randn(p.shape, generator=gen))
        self.optimizer = AdaBelief(self.model.parameters(), lr=0.05)
        self.scheduler = torch.optim.lr_scheduler.MultiStepLR(self.optimizer, [4], 0.5)
        self.total = torch.zeros(3)
        self.bad_step, self.fail_step = bad_step, fail_step
        self.seen = []

    def train_step(self, step, generator):
        self.seen.append(step)
        if step == self.fail_step:
            raise RuntimeError("simulated kill")
        x = torch.randn(16, 3, generator=generator)
        y = x @ TRUE_W + 0.3
        self.total += x.mean(0)
        loss = ((self.ddp_model(x).squeeze(1) - y) ** 2).mean()
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        if step == self.bad_step:  # a divergence: weights and loss become NaN
            with torch.no_grad():
                for p in self.model.parameters():
                    p.fill_(float("nan"))
            return {"loss": float("nan"), "norm": 0.0}
        return {"loss": float(loss.detach()), "norm": float(self.model.weight.detach().norm())}

    def state_dict(self):
        return {"total": self.total}

    def load_state_dict(self, state):
        self.total.copy_(state["total"])


def _params(method):
    return {k: v.clone() for k, v in method.model.state_dict().items()}


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_training_learns_and_checkpoint_holds_everything(tmp_path):
    toy = Toy()
    x = torch.randn(64, 3, generator=torch.Generator().manual_seed(9))

    def error():
        with torch.no_grad():
            return float(((toy.model(x).squeeze(1) - x @ TRUE_W - 0.3) ** 2).mean())

    before = error()
    result = run_training(toy, EngineOptions(steps=30, seed=1, checkpoint=tmp_path / "t.ckpt",
                                             checkpoint_every=10))
    assert result.step == 30 and result.start_step == 0 and result.nan_skipped == 0
    assert error() < 0.5 * before
    state = load_training_checkpoint(tmp_path / "t.ckpt")
    assert state["step"] == 30 and state["world_size"] == 1 and state["seed"] == 1
    assert _same(state["model"], toy.model.state_dict())
    assert torch.equal(state["ranks"][0]["method"]["total"], toy.total)
    assert state["scheduler"]["last_epoch"] == 30
    assert set(state["ranks"][0]["rng"]) == {"torch", "cuda", "numpy", "python"}
    # weights_only loading works: nothing but tensors and plain containers inside
    torch.load(tmp_path / "t.ckpt", weights_only=True)


def test_resume_is_bit_identical(tmp_path):
    full = Toy()
    run_training(full, EngineOptions(steps=12, seed=5, checkpoint=tmp_path / "a.ckpt",
                                     checkpoint_every=4))
    first = Toy()
    run_training(first, EngineOptions(steps=6, seed=5, checkpoint=tmp_path / "b.ckpt",
                                      checkpoint_every=4))
    second = Toy()  # a fresh process: everything comes from the checkpoint
    result = run_training(second, EngineOptions(steps=12, seed=5, checkpoint=tmp_path / "b.ckpt",
                                                checkpoint_every=4, resume=True))
    assert result.start_step == 6 and second.seen == list(range(6, 12))
    assert _same(_params(full), _params(second))
    assert torch.equal(full.total, second.total)
    assert full.optimizer.param_groups[0]["lr"] == second.optimizer.param_groups[0]["lr"]
    a = full.optimizer.state_dict()["state"]
    b = second.optimizer.state_dict()["state"]
    assert all(torch.equal(a[i]["exp_avg_var"], b[i]["exp_avg_var"]) for i in a)


def test_global_rng_states_are_restored(tmp_path):
    import random

    class UsesGlobal(Toy):
        def train_step(self, step, generator):
            metrics = super().train_step(step, generator)
            self.total += torch.rand(3) + float(np.random.rand()) + random.random()
            return metrics

    full = UsesGlobal()
    torch.manual_seed(1), np.random.seed(1), random.seed(1)
    run_training(full, EngineOptions(steps=6, seed=0, checkpoint=tmp_path / "a.ckpt"))
    part = UsesGlobal()
    torch.manual_seed(1), np.random.seed(1), random.seed(1)
    run_training(part, EngineOptions(steps=3, seed=0, checkpoint=tmp_path / "b.ckpt"))
    torch.manual_seed(99), np.random.seed(99), random.seed(99)  # another state in between
    rest = UsesGlobal()
    run_training(rest, EngineOptions(steps=6, seed=0, checkpoint=tmp_path / "b.ckpt",
                                     resume=True))
    assert torch.equal(full.total, rest.total)


def test_kill_mid_run_leaves_last_checkpoint_and_no_partial_files(tmp_path):
    path = tmp_path / "k.ckpt"
    toy = Toy(fail_step=7)
    with pytest.raises(RuntimeError, match="simulated kill"):
        run_training(toy, EngineOptions(steps=12, seed=2, checkpoint=path, checkpoint_every=3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.ckpt"]  # no temporary files
    state = load_training_checkpoint(path)
    assert state["step"] == 6
    resumed = Toy()
    run_training(resumed, EngineOptions(steps=12, seed=2, checkpoint=path, resume=True))
    full = Toy()
    run_training(full, EngineOptions(steps=12, seed=2))
    assert _same(_params(full), _params(resumed))


def test_interrupted_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "w.ckpt"
    run_training(Toy(), EngineOptions(steps=2, seed=0, checkpoint=path))

    def broken_save(obj, target, *args, **kwargs):
        with open(target, "wb") as handle:
            handle.write(b"PK\x03\x04 half")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(KeyboardInterrupt):
        run_training(Toy(), EngineOptions(steps=4, seed=0, checkpoint=path, resume=True))
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.ckpt"]
    assert load_training_checkpoint(path)["step"] == 2


def test_nan_guard_restores_last_good_state():
    seen = {}

    def record(step, method):
        moments = [state["exp_avg"].clone() for state in method.optimizer.state.values()]
        seen[step] = (_params(method), moments)

    toy = Toy(bad_step=5)
    result = run_training(toy, EngineOptions(steps=8, seed=3, nan_guard=True),
                          hooks=[Hook(1, record)])
    assert result.nan_skipped == 1 and result.metrics["skipped"] == 1
    assert _same(seen[6][0], seen[5][0])          # the bad update was undone
    assert not _same(seen[7][0], seen[6][0])      # and training went on
    assert all(torch.equal(a, b) for a, b in zip(seen[6][1], seen[5][1]))
    assert all(torch.isfinite(p).all() for p in toy.model.parameters())
    assert toy.optimizer.param_groups[0]["lr"] == pytest.approx(0.025)  # schedule kept on

    unguarded = Toy(bad_step=5)
    run_training(unguarded, EngineOptions(steps=8, seed=3))
    assert not torch.isfinite(unguarded.model.weight).all()


def test_resume_refusals(tmp_path):
    path = tmp_path / "r.ckpt"
    with pytest.raises(UsageError, match="does not exist"):
        run_training(Toy(), EngineOptions(steps=2, checkpoint=path, resume=True))
    run_training(Toy(), EngineOptions(steps=2, checkpoint=path, fingerprint={"lr": 1}))
    with pytest.raises(UsageError, match="earlier run exists"):
        run_training(Toy(), EngineOptions(steps=2, checkpoint=path))
    with pytest.raises(UsageError, match="other settings.*lr"):
        run_training(Toy(), EngineOptions(steps=4, checkpoint=path, resume=True,
                                          fingerprint={"lr": 2}))
    with pytest.raises(UsageError, match="--seed"):
        run_training(Toy(), EngineOptions(steps=4, seed=9, checkpoint=path, resume=True,
                                          fingerprint={"lr": 1}))
    done = run_training(Toy(), EngineOptions(steps=2, checkpoint=path, resume=True,
                                             fingerprint={"lr": 1}))
    assert done.step == 2 and done.start_step == 2  # nothing left to do
    (tmp_path / "junk.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(DataError, match="junk.ckpt"):
        run_training(Toy(), EngineOptions(steps=2, checkpoint=tmp_path / "junk.ckpt",
                                          resume=True))


def test_progress_lines_and_report_lines(capsys, monkeypatch):
    # stderr is not a terminal here: timed lines with rate and ETA (every 0 s in this test),
    # as in a log file or under make, not a bar
    monkeypatch.setenv("MRGEN_PROGRESS_SECONDS", "0")
    run_training(Toy(), EngineOptions(steps=3, progress=True, description="toy"))
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("toy: 1/3 step (33%)") and "step/s, ETA" in err[0]
    assert "loss " in err[0] and "norm " in err[0] and "\r" not in "".join(err)
    assert err[-1].startswith("toy: 3/3 step (100%)") and "done in" in err[-1]
    lines = []
    run_training(Toy(), EngineOptions(steps=4, log=lines.append, log_every=2))
    assert len(lines) == 2 and lines[1].startswith("train: step 4/4 loss ")
    assert capsys.readouterr().err == ""  # no bar without progress


def test_png_hook_writes_a_montage(tmp_path):
    target = tmp_path / "s.png"
    images = torch.linspace(0, 1, 4 * 8 * 8).reshape(4, 8, 8)
    calls = []
    hook = png_hook(target, 2, lambda: calls.append(1) or images)
    run_training(Toy(), EngineOptions(steps=5), hooks=[hook])
    assert len(calls) == 3  # steps 2, 4 and the end (5)
    data = target.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (height, width) == (16, 16)  # a 2 x 2 grid of 8 x 8 tiles


def test_step_generators_depend_only_on_seed_rank_step():
    a = torch.rand(4, generator=step_generator(1, 0, 7, "cpu"))
    b = torch.rand(4, generator=step_generator(1, 0, 7, "cpu"))
    assert torch.equal(a, b)
    others = [step_generator(2, 0, 7, "cpu"), step_generator(1, 1, 7, "cpu"),
              step_generator(1, 0, 8, "cpu")]
    assert all(not torch.equal(a, torch.rand(4, generator=g)) for g in others)
    assert derive_seed(-1, 3) == derive_seed(2**64 - 1, 3) < 2**63


def test_epoch_indices_cover_each_epoch_once_over_ranks():
    ranks = [DistContext(rank=r, world_size=2) for r in range(2)]
    seen = [i for step in range(3) for ctx in ranks for i in epoch_indices(step, 2, 12, 7, ctx)]
    assert sorted(seen) == list(range(12))                       # one epoch = 3 steps here
    following = [i for ctx in ranks for i in epoch_indices(3, 2, 12, 7, ctx)]
    assert following != seen[:4]                                 # a new permutation
    assert epoch_indices(5, 3, 10, 1) == epoch_indices(5, 3, 10, 1)


def test_single_process_context():
    ctx = DistContext()
    assert not ctx.distributed and ctx.is_main
    assert ctx.mean({"a": 1.5}) == {"a": 1.5} and ctx.gather(3) == [3]
    model = torch.nn.Linear(2, 2)
    assert ctx.wrap(model) is model


# ---------------------------------------------------------------------------------------------
# Model files


def _energy(tmp_path, name="m.pt"):
    from mrgen.priors.energy import EnergyConfig, EnergyNet

    config = EnergyConfig(base_width=4, growth=1.75, stages=3, crop=32)
    model = EnergyNet(config)
    model.reset_parameters(torch.Generator().manual_seed(4))
    description = model_description("energy-prior", config.to_dict(), "each slice divided by "
                                    "its maximum", {"steps": 0})
    save_model(tmp_path / name, model, description)
    return model, tmp_path / name


def test_model_file_rebuilds_the_model_from_its_description(tmp_path):
    model, path = _energy(tmp_path)
    loaded, meta = load_model(path, "cpu")
    assert meta["kind"] == "energy-prior" and meta["architecture"]["base_width"] == 4
    assert meta["normalisation"].startswith("each slice") and "state_dict" not in meta
    assert meta["mrgen_version"] and meta["fitted"] == {}
    x = torch.rand(3, 40, 36, generator=torch.Generator().manual_seed(0))
    assert torch.equal(loaded(x), model(x))
    assert not loaded.training
    torch.load(path, weights_only=True)  # safe to load: no code inside
    with pytest.raises(DataError, match="not 'djsense'"):
        load_model(path, kind="djsense")


def test_fitted_entries_are_stored(tmp_path):
    _, path = _energy(tmp_path)
    store_fitted_entries(path, {"lambda_fit": {"slope": -2.7e8, "intercept": 0.55}})
    store_fitted_entries(path, {"other": 1.0})
    _, meta = load_model(path)
    assert meta["fitted"] == {"lambda_fit": {"slope": -2.7e8, "intercept": 0.55}, "other": 1.0}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt"]


@pytest.mark.parametrize("damage", ["truncate", "garbage", "foreign", "missing", "weights"])
def test_bad_model_files_are_data_errors(tmp_path, damage):
    _, path = _energy(tmp_path)
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif damage == "garbage":
        path.write_bytes(b"\x00garbage" * 10)
    elif damage == "foreign":
        torch.save({"weights": torch.zeros(2)}, path)
    elif damage == "missing":
        path = tmp_path / "absent.pt"
    else:
        raw = read_model(path)
        raw["architecture"]["base_width"] = 8  # the weights no longer fit
        torch.save(raw, path)
    with pytest.raises(DataError, match=path.name):
        load_model(path)


def test_training_checkpoint_is_a_loadable_model(tmp_path):
    model, path = _energy(tmp_path)
    description = read_model(path)

    class Prior(Toy):
        def __init__(self):
            super().__init__()
            self.model = model
            self.optimizer = AdaBelief(model.parameters(), lr=1e-3)
            self.scheduler = None

        def train_step(self, step, generator):
            x = torch.rand(2, 32, 32, generator=generator)
            loss = self.ddp_model(x).mean()
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            return {"loss": float(loss.detach())}

    info = {k: description[k] for k in ("kind", "architecture", "normalisation", "training")}
    prior = Prior()
    run_training(prior, EngineOptions(steps=2, checkpoint=tmp_path / "p.ckpt", model_info=info))
    loaded, meta = load_model(tmp_path / "p.ckpt")
    assert meta["training"]["checkpoint_step"] == 2
    x = torch.rand(2, 32, 32)
    assert torch.equal(loaded(x), prior.model(x))
    with pytest.raises(DataError, match="training checkpoint"):
        store_fitted_entries(tmp_path / "p.ckpt", {"x": 1})


def test_every_model_kind_names_its_builder():
    """model_files names the builders by string; each module's KIND must be the table's key."""
    import importlib

    from mrgen.model_files import BUILDERS

    for kind, builder in BUILDERS.items():
        module, function = builder.split(":")
        loaded = importlib.import_module(module)
        assert loaded.KIND == kind and callable(getattr(loaded, function))


def test_a_fresh_process_loads_a_model_without_the_other_methods(tmp_path):
    import subprocess
    import sys

    _, path = _energy(tmp_path)
    code = ("import sys; from mrgen.model_files import load_model; "
            f"load_model({str(path)!r}, kind='energy-prior'); "
            "print(sorted(m for m in sys.modules if m.startswith(('mrgen.training', "
            "'mrgen.deepen', 'mrgen.djsense'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


# ---------------------------------------------------------------------------------------------
# AdaBelief


def test_adabelief_matches_its_formula():
    p = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    opt = AdaBelief([p], lr=0.1, eps=1e-16)
    grads = [torch.tensor([0.5, 1.0]), torch.tensor([-0.2, 0.3]), torch.tensor([0.1, 0.1])]
    ref = np.array([1.0, -2.0])
    m = np.zeros(2)
    s = np.zeros(2)
    for t, g in enumerate(grads, start=1):
        p.grad = g.clone()
        opt.step()
        g = g.numpy().astype(np.float64)
        m = 0.9 * m + 0.1 * g
        s = 0.999 * s + 0.001 * (g - m) ** 2 + 1e-16
        ref = ref - 0.1 / (1 - 0.9 ** t) * m / (np.sqrt(s / (1 - 0.999 ** t)) + 1e-16)
    assert np.allclose(p.detach().numpy(), ref, rtol=1e-5)
    with pytest.raises(ValueError):
        AdaBelief([p], betas=(1.0, 0.9))
    assert math.isclose(opt.param_groups[0]["eps"], 1e-16)
