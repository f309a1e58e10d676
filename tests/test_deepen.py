"""DEEPEN (Chand, Jacob 2025): energy model file, ML training on the engine, MM MAP, Langevin sampling,
and the `deepen` / `train deepen` commands."""

import numpy as np
import pytest
import torch

import commands.main  # noqa: F401  (the app and its commands)
import commands.deepen  # noqa: F401  (registers `mrgen deepen`)
import commands.train_deepen  # noqa: F401,E402  (registers `mrgen train deepen`)
from mrgen.deepen.model import KIND, DeepenConfig, DeepenEnergy, Posterior, data_scale
from mrgen.deepen.recon import deepen_map, deepen_sample, mm_step
from mrgen.deepen.training import (DeepenTrainConfig, DeepenTraining, load_examples,
                                   train_deepen)
from mrgen.errors import UsageError
from mrgen.fft import fft2c
from mrgen.masks import make_mask
from mrgen.model_files import load_model
from mrgen.training.distributed import DistContext, step_generator
from mrgen.training.engine import EngineOptions

from .conftest import invoke

TINY = DeepenConfig(width=8, depth=3)
CONFIG = DeepenTrainConfig(mask="poisson:4", batch=4, lr=1e-3, chain_steps=20)


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny convolutions: one thread is fastest, and the machine is shared."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("deepen")
    path = folder / "ph.h5"
    result = invoke("phantom", "--size", 32, 32, "--slices", 4, "--coils", 4, path)
    assert result.exit_code == 0, result.stderr
    return folder, path


@pytest.fixture(scope="module")
def examples(data):
    return load_examples([str(data[1])])


@pytest.fixture(scope="module")
def model_file(data):
    folder, path = data
    out = folder / "tiny.pt"
    result = invoke("train", "deepen", path, out, "--width", 8, "--depth", 3, "--batch", 2,
                    "--steps", 4, "--chain-steps", 10, "--lr", 1e-3)
    assert result.exit_code == 0, result.stderr
    return out


def _net(seed=0):
    net = DeepenEnergy(TINY)
    net.reset_parameters(torch.Generator().manual_seed(seed))
    for p in net.parameters():
        p.requires_grad_(False)
    return net


def _mask(spec, seed=1):
    return torch.from_numpy(make_mask(spec, (32, 32), seed=seed))[None]


def test_energy_is_non_negative_and_size_independent():
    net = _net()
    x = torch.randn(3, 32, 32, dtype=torch.complex64)
    e = net(x)
    assert e.shape == (3,) and (e >= 0).all()
    assert net(torch.randn(1, 24, 40, dtype=torch.complex64)).shape == (1,)
    assert torch.allclose(net(torch.view_as_real(x)), e)          # the real view


def test_mm_cost_never_increases_and_cg_solves_its_system(examples):
    net = _net()
    mask = _mask("poisson:4")
    result = deepen_map(net, examples.kspace[:1], examples.maps[:1], mask, iters=40,
                        generator=torch.Generator().manual_seed(0))
    costs = np.array(result.costs[0])
    assert len(costs) > 3 and np.isfinite(costs).all()
    assert (np.diff(costs) <= 0).all()                      # Lemma 2.1, checked per step
    assert costs[-1] < costs[0]
    # One step's CG solves (A^H A + L I) x = A^H b + L x_n - grad E(x_n).
    kspace = examples.kspace[:1] * mask.unsqueeze(1)
    scale, sense = data_scale(kspace, examples.maps[:1], mask)
    post = Posterior(net, examples.maps[:1], mask, kspace / scale)
    x = sense / scale
    L = 5.0
    new, info, grad = mm_step(post, x, L, cg_iters=200, cg_tol=1e-6)
    rhs = post.rhs + L * x - grad
    residual = post.op.normal(new) + L * new - rhs
    assert float(residual.abs().norm() / rhs.abs().norm()) < 1e-4
    assert float(info.residual.max()) < 1e-4


def test_training_moves_the_energy_gap_and_resumes_bit_identically(tmp_path, examples):
    method = DeepenTraining(examples, TINY, CONFIG, DistContext(), seed=0)
    method.bind(DistContext())

    def gap():  # E(x+) - E(x-) on a fixed problem and fixed chains
        g = torch.Generator().manual_seed(123)
        post, positive = method.problem(0, g)
        negative = method.fake_samples(post, positive.shape, g)
        with torch.no_grad():
            return float(method.model(positive).mean() - method.model(negative).mean())

    before = gap()
    for h in range(12):
        metrics = method.train_step(h, step_generator(0, 0, h, "cpu"))
        assert np.isfinite(metrics["loss"])
    assert gap() < before - 1.0                             # data lower, samples higher

    config = DeepenTrainConfig(mask="poisson:4", batch=2, lr=1e-3, chain_steps=5)

    def run(name, steps, resume=False):
        options = EngineOptions(steps=steps, seed=3, checkpoint=tmp_path / f"{name}.ckpt",
                                checkpoint_every=2, resume=resume)
        train_deepen(examples, TINY, config, tmp_path / f"{name}.pt", options)
        return load_model(tmp_path / f"{name}.pt")

    whole, meta = run("whole", 4)
    run("part", 2)
    resumed, _ = run("part", 4, resume=True)
    for key, value in whole.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key
    assert meta["kind"] == KIND and meta["architecture"] == TINY.to_dict()
    assert meta["training"]["mask"] == "poisson:4" and "SENSE" in meta["normalisation"]
    assert meta["training"]["steps"] == 4


def test_sampling_variance_is_larger_where_kspace_was_not_sampled(examples):
    net = _net()
    mask = _mask("random-exact:2:0.2")       # not the training kind: any mask works
    kept = []
    result = deepen_sample(net, examples.kspace[:1], examples.maps[:1], mask, eps=0.02,
                           samples=12, steps=30, chunk=6,
                           generator=torch.Generator().manual_seed(0),
                           on_sample=lambda i, s, x: kept.append(x.clone()))
    assert result.count == 12 and torch.isfinite(result.mean).all()
    assert torch.isfinite(result.variance).all() and (result.variance >= 0).all()
    stack = torch.stack(kept)                                           # (12, H, W)
    assert torch.allclose(result.mean[0], stack.mean(0), atol=1e-4)
    coil_k = fft2c(examples.maps[:1] * stack[:, None])                  # (12, C, H, W)
    k_var = (coil_k - coil_k.mean(0)).abs().pow(2).mean(0).mean(0)      # (H, W)
    sampled = mask[0].bool()
    assert k_var[~sampled].mean() > 10 * k_var[sampled].mean()


def test_sampling_keeps_the_last_states_of_each_chain_pooled_over_chunks(examples):
    """--keep: every chain's last states, chunks of chains as one batch; the moments are
    those of all kept states together, and the traces feed ESS and R-hat."""
    net = _net()
    mask = _mask("random-exact:2:0.2")
    kept = {}
    result = deepen_sample(net, examples.kspace[:1], examples.maps[:1], mask, eps=0.02,
                           samples=5, steps=8, chunk=2, keep=4,
                           generator=torch.Generator().manual_seed(0),
                           on_sample=lambda i, s, x: kept.__setitem__(i, x.clone()))
    assert result.count == 20 and sorted(kept) == list(range(20))
    stack = torch.stack([kept[i] for i in range(20)])
    assert torch.allclose(result.mean[0], stack.mean(0), atol=1e-4)
    variance = (stack - stack.mean(0)).abs().square().sum(0) / 19
    assert torch.allclose(result.variance[0], variance.float(), rtol=1e-3, atol=1e-9)
    assert result.traces.shape == (5, 4, 9)


def test_map_with_another_mask_than_training(examples, model_file):
    from mrgen.deepen.training import load_deepen

    net, _ = load_deepen(model_file)
    mask = _mask("random-exact:2")                          # 1D, trained on 2D poisson
    result = deepen_map(net, examples.kspace[:2], examples.maps[:2], mask.expand(2, 32, 32),
                        iters=30, generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(result.image).all()
    for costs in result.costs:
        assert (np.diff(costs) <= 0).all()
    truth = examples.truth[:2]
    zf_err = float((result.sense - truth).abs().norm() / truth.abs().norm())
    map_err = float((result.image - truth).abs().norm() / truth.abs().norm())
    assert map_err < 2 * zf_err + 0.1                      # no blow-up from an untrained net


def test_cli_map_sample_and_errors(tmp_path, data, model_file):
    folder, path = data
    mask = tmp_path / "m.npy"
    assert invoke("mask", "--like", path, "--kind", "random-exact", "--accel", 2,
                  mask).exit_code == 0
    out = tmp_path / "map.npy"
    result = invoke("deepen", path, out, "--model", model_file, "--mask", mask, "--iters", 5,
                    "--slice", "0:2", "--maps", f"{path}:maps")
    assert result.exit_code == 0, result.stderr
    image = np.load(out)
    assert image.shape == (2, 32, 32) and np.iscomplexobj(image) and np.isfinite(image).all()
    mean, var, samples = tmp_path / "mmse.npy", tmp_path / "var.npy", tmp_path / "s.npy"
    result = invoke("deepen", path, mean, "--model", model_file, "--mode", "sample",
                    "--samples", 4, "--steps", 5, "--slice", 1, "--var", var,
                    "--samples-out", samples, "--magnitude", "--seed", 2)
    assert result.exit_code == 0, result.stderr
    assert np.load(mean).shape == (32, 32) and np.load(mean).dtype == np.float32
    assert np.load(var).shape == (32, 32) and (np.load(var) >= 0).all()
    assert np.load(samples).shape == (4, 32, 32)
    pre = invoke("deepen", path, tmp_path / "pre.npy", "--model", model_file, "--mode",
                 "sample", "--samples", 4, "--steps", 5, "--slice", 1, "--precondition",
                 "--start", "sense", "--seed", 2)
    assert pre.exit_code == 0, pre.stderr
    assert "k-space preconditioned ULA, step 0.2" in pre.stderr and "start SENSE" in pre.stderr
    assert "slice 0: k-space preconditioner, curvature" in pre.stderr
    assert np.isfinite(np.load(tmp_path / "pre.npy")).all()
    # bfloat16 chains (mrgen.precision): the log says so, the MMSE stays near float32's
    runs = {}
    for precision in ("float32", "bfloat16"):
        done = invoke("deepen", path, tmp_path / f"{precision}.npy", "--model", model_file,
                      "--mode", "sample", "--samples", 4, "--steps", 5, "--slice", 1,
                      "--start", "sense", "--seed", 2, "--precision", precision)
        assert done.exit_code == 0 and f", {precision}" in done.stderr, done.stderr
        runs[precision] = np.load(tmp_path / f"{precision}.npy")
    assert np.linalg.norm(runs["bfloat16"] - runs["float32"]) < \
        0.05 * np.linalg.norm(runs["float32"])
    for args in (["--mode", "bad"], ["--iters", 0], ["--var", tmp_path / "v.npy"],
                 ["--model", tmp_path / "missing.pt"], ["--precision", "bfloat16"],
                 ["--mode", "sample", "--precision", "half"]):
        bad = invoke("deepen", path, tmp_path / "x.npy",
                     *(["--model", model_file] if "--model" not in args else []), *args)
        assert bad.exit_code == 2, (args, bad.stderr)
        assert len(bad.stderr.strip().splitlines()) == 1
    bad = invoke("train", "deepen", path, tmp_path / "t.pt", "--mask", "nonsense:4",
                 "--steps", 1)
    assert bad.exit_code == 2 and len(bad.stderr.strip().splitlines()) == 1


def test_langevin_command_samples_the_deepen_posterior(tmp_path, data, model_file):
    """mrgen langevin --model deepen.pt: one ULA chain on DEEPEN's posterior. Started from the
    same noise it is the paper's chain of mrgen deepen --mode sample, step for step; its mean
    is the mean of the samples it streams; variance is larger where k-space was not sampled."""
    folder, path = data
    mask = tmp_path / "m.npy"
    assert invoke("mask", "--like", path, "--kind", "random-exact", "--accel", 2,
                  mask).exit_code == 0
    common = ["--model", model_file, "--mask", mask, "--maps", f"{path}:maps", "--slice", 1,
              "--seed", 4]
    ula = ["--sampler", "ula", "--chains", "1"]  # the paper's chain (langevin's default for
    # DEEPEN is MALA)
    chain = invoke("langevin", path, tmp_path / "chain.npy", *common, *ula, "--init", "noise",
                   "--burn-in", 29, "--samples", 1, "--thin", 1)
    paper = invoke("deepen", path, tmp_path / "paper.npy", *common, "--mode", "sample",
                   "--samples", 1, "--steps", 30)
    assert chain.exit_code == 0 and paper.exit_code == 0, chain.stderr + paper.stderr
    assert np.allclose(np.load(tmp_path / "chain.npy"), np.load(tmp_path / "paper.npy"),
                       atol=1e-5)

    mean, var, samples = tmp_path / "mmse.npy", tmp_path / "var.npy", tmp_path / "s.npy"
    result = invoke("langevin", path, mean, *common, "--sampler", "ula", "--burn-in", 20,
                    "--samples", 8, "--thin", 5, "--chains", 2, "--var", var,
                    "--samples-out", samples)
    assert result.exit_code == 0, result.stderr
    assert "split R-hat" in result.stderr
    stack = np.load(samples)                    # 2 chains x 8 kept, pooled
    assert stack.shape == (16, 32, 32) and np.iscomplexobj(stack)
    assert np.allclose(np.load(mean), stack.mean(0), atol=1e-5)
    assert np.allclose(np.load(var), stack.var(0, ddof=1), rtol=1e-3, atol=1e-8)
    maps = torch.from_numpy(load_examples([str(path)]).maps[1:2].numpy())
    coil_k = fft2c(maps * torch.from_numpy(stack)[:, None])
    k_var = (coil_k - coil_k.mean(0)).abs().pow(2).mean(0).mean(0)
    sampled = torch.from_numpy(np.load(mask)).bool().expand(32, 32)
    # Measured samples are reset to b + eps z at every step (unit step on a projection);
    # unmeasured ones wander, held back only by E (this tiny net's drift holds them to ~2x).
    assert k_var[~sampled].median() > 1.5 * k_var[sampled].median()

    for args in (["--lam", 2], ["--init", "ipalm"], ["--nonneg"], ["--prior-only"]):
        data_file = [] if "--prior-only" in args else [path]
        bad = invoke("langevin", *data_file, tmp_path / "x.npy", "--model", model_file, *args)
        assert bad.exit_code == 2, (args, bad.stderr)
        assert "DEEPEN" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


def test_score_matching_loss_is_least_at_the_gaussian_priors_energy():
    """For x ~ N(0, tau^2 I) the loss is minimal at E = s^2 ||y||^2 / (2 (tau^2 + sigma^2)), i.e.
    s^2 (-log p_sigma) in the posterior's units (s^2 = eps^2 / 2): the sigma^2 / s^2 factor."""
    from mrgen.deepen.score import deepen_dsm_loss

    g = torch.Generator().manual_seed(0)
    tau, sigma, eps = 0.3, 0.05, 0.02
    s2 = eps ** 2 / 2
    clean = tau * torch.randn((64, 16, 16, 2), generator=g)
    noise = torch.randn(clean.shape, generator=g)

    def loss(factor):
        def energy(y):
            return factor * s2 * y.square().flatten(1).sum(1) / (2 * (tau ** 2 + sigma ** 2))
        return float(deepen_dsm_loss(energy, clean, sigma, s2, noise).detach())

    best = loss(1.0)
    assert best < loss(0.8) and best < loss(1.25)
    assert best == pytest.approx(tau ** 2 / (tau ** 2 + sigma ** 2), rel=0.02)  # MMSE / sigma^2
    assert loss(0.0) == pytest.approx(1.0, rel=0.02)


def test_score_matching_training_denoises_resumes_and_warm_starts_ml(tmp_path, examples):
    """--objective dsm lowers its loss below the identity denoiser's 1, resumes bit-identically,
    and --init starts maximum likelihood from its weights."""
    config = DeepenTrainConfig(mask="poisson:4", batch=2, lr=1e-3, objective="dsm", sigma=0.05,
                               patch=32, patches=8)
    wide = DeepenConfig(width=16, depth=5)

    def run(name, steps, resume=False, cfg=config):
        options = EngineOptions(steps=steps, seed=3, checkpoint=tmp_path / f"{name}.ckpt",
                                checkpoint_every=2, resume=resume)
        result, _ = train_deepen(examples, wide, cfg, tmp_path / f"{name}.pt", options)
        return load_model(tmp_path / f"{name}.pt"), result

    (whole, meta), result = run("whole", 60)
    assert result.metrics["loss"] < 0.8
    assert meta["training"]["objective"] == "dsm"
    run("part", 30)
    (resumed, _), _ = run("part", 60, resume=True)
    for key, value in whole.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key

    ml = DeepenTrainConfig(mask="poisson:4", batch=2, chain_steps=3,
                           init=str(tmp_path / "whole.pt"))
    method = DeepenTraining(examples, wide, ml, DistContext(), seed=9)
    for key, value in whole.state_dict().items():
        assert torch.equal(value, method.model.state_dict()[key]), key
    other = DeepenTrainConfig(init=str(tmp_path / "whole.pt"))
    with pytest.raises(UsageError, match="--init"):
        DeepenTraining(examples, DeepenConfig(width=4, depth=3), other, DistContext())
