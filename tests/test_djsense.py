"""Deep J-Sense (Arvinte et al. 2021): operators, CG sub-problems, L2 J-Sense, training, inference, CLI."""

import numpy as np
import pytest
import torch

from mrgen.cg import conjugate_gradient
from mrgen.djsense.model import (DJSense, DJSenseConfig, KernelModel, linear_convolution,
                                 rss_init)
from mrgen.djsense.training import (Examples, TrainConfig, curriculum_unrolls, prepare,
                                    ssim_loss, train_djsense)
from mrgen.fft import ifft2c
from mrgen.linops import check_operator
from mrgen.training.engine import EngineOptions

TINY = DJSenseConfig(unrolls=2, map_cg=3, image_cg=3, map_kernel=(7, 5), width=8, blocks=2)
TRAIN = TrainConfig(mask="random-exact:4:0.16", lr=3e-3, curriculum=4)
CLI_TINY = ["--unrolls", "2", "--map-cg", "3", "--image-cg", "3", "--map-kernel", "7", "5",
            "--width", "8", "--blocks", "2", "--mask", "random-exact:4:0.16", "--lr", "3e-3"]


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _cli():
    import commands.main  # noqa: F401
    import commands.djsense  # noqa: F401
    import commands.train_djsense  # noqa: F401
    from typer.testing import CliRunner

    from commands.cli import app

    runner = CliRunner()
    return lambda *args: runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def phantom():
    from mrgen.phantom import make_phantom

    return make_phantom(size=(32, 32), slices=4, coils=4)


@pytest.fixture(scope="module")
def phantom_h5(tmp_path_factory, phantom):
    from mrgen import io

    path = tmp_path_factory.mktemp("dj") / "ph.h5"
    io.write_bundle(str(path), {"kspace": phantom.kspace, "reconstruction_rss": phantom.rss})
    return path


def _undersampled(phantom, accel=4, center=0.16, seed=0):
    from mrgen.masks import make_mask

    kspace = torch.from_numpy(phantom.kspace[:2])
    mask = torch.from_numpy(np.stack([make_mask(f"random-exact:{accel}:{center}", (32, 32),
                                                seed=seed + i, tolerance=None)
                                      for i in range(2)]))
    y, _ = prepare(kspace, mask)
    return y, mask


def test_kspace_convolution_is_the_image_space_product():
    gen = torch.Generator().manual_seed(0)
    shape, kernel = (12, 10), (5, 3)
    ops = KernelModel(shape, kernel, None)
    m = torch.randn(2, *ops.grid, dtype=torch.complex64, generator=gen)
    s = torch.randn(2, 3, *kernel, dtype=torch.complex64, generator=gen)
    k = ops.forward(ifft2c(m), s)                       # image-space product, cropped
    ref = linear_convolution(m[:, None], s, shape)      # explicit linear convolution
    assert float((k - ref).abs().max() / ref.abs().max()) < 1e-5
    # a unit kernel at the centre is the identity (crop of m)
    delta = torch.zeros(1, 1, *kernel, dtype=torch.complex64)
    delta[..., 2, 1] = 1
    ident = ops.forward(ifft2c(m[:1]), delta)
    from mrgen.djsense.model import extract
    assert torch.allclose(ident[:, 0], extract(m[:1], shape), atol=1e-5)
    # adjoints of both sub-problem operators (the self-test of mrgen.linops)
    mask = (torch.rand(2, *shape, generator=gen) > 0.5).float()
    ops = KernelModel(shape, kernel, mask)
    x = ifft2c(m)
    for op, given in ((ops.kernel_operator(x, coils=3), s),
                      (ops.image_operator(ops.maps_image(s)), x)):
        check = check_operator(op, given, gen, tolerance=1e-4)
        assert check.passed, check


def test_cg_solves_both_sub_problems(phantom):
    y, mask = _undersampled(phantom)
    ops = KernelModel((32, 32), (7, 5), mask)
    x, s = rss_init(y, ops)
    lam = 0.01
    for op, start in ((ops.kernel_operator(x), s), (ops.image_operator(ops.maps_image(s)), x)):
        normal, rhs = op.normal, op.adjoint(y)
        sol = conjugate_gradient(normal, rhs, x0=start, iters=200, tol=1e-6, lam=lam,
                                 batch_dims=1)
        residual = normal(sol) + lam * sol - rhs
        rel = residual.flatten(1).norm(dim=1) / rhs.flatten(1).norm(dim=1)
        assert float(rel.max()) < 1e-4


def test_l2_jsense_lowers_the_data_residual(phantom):
    y, mask = _undersampled(phantom)
    model = DJSense(DJSenseConfig(mode="l2", unrolls=4, map_kernel=(7, 5)))
    ops = KernelModel((32, 32), (7, 5), mask)
    x0, s0 = rss_init(y, ops)
    with torch.no_grad():
        out = model.reconstruct(y, mask)
    before = (ops.forward(x0, s0) - y).norm()
    after = (ops.forward(out["x"], out["s"]) - y).norm()
    assert float(after) < 0.5 * float(before)
    assert out["rss"].shape == (2, 32, 32) and out["maps"].shape == (2, 4, 32, 32)


def test_curriculum_and_modl_forward(phantom):
    assert [curriculum_unrolls(h, 3, 6) for h in range(8)] == [1, 1, 2, 2, 3, 3, 3, 3]
    assert curriculum_unrolls(0, 3, 0) == 3
    from mrgen.djsense.model import espirit_for

    y, mask = _undersampled(phantom, center=0.25)
    model = DJSense(DJSenseConfig(mode="modl", unrolls=2, map_cg=0, image_cg=3, width=4,
                                  blocks=2))
    model.reset_parameters(torch.Generator().manual_seed(0))
    out = model(y, mask, maps=espirit_for(y))
    assert out.shape == (2, 32, 32) and bool(torch.isfinite(out).all())
    out.mean().backward()                        # differentiable end to end
    assert model.lam_image.grad is not None
    assert all(bool(torch.isfinite(p.grad).all()) for p in model.parameters())  # no NaN at 0


def _eval_loss(model, phantom):
    y, mask = _undersampled(phantom, seed=100)
    ref = torch.from_numpy(phantom.rss[:2]) / prepare(torch.from_numpy(phantom.kspace[:2]),
                                                       mask)[1].reshape(-1, 1, 1)
    with torch.no_grad():
        return float(ssim_loss(model(y, mask), ref).mean())


def test_training_lowers_the_loss_and_resumes_exactly(phantom, tmp_path):
    examples = Examples(list(phantom.kspace), list(phantom.rss), {"files": [], "slices": 4})
    first = tmp_path / "a.pt"
    result, method = train_djsense(examples, TINY, TRAIN, first,
                                   EngineOptions(steps=12, checkpoint=tmp_path / "a.ckpt"))
    start = DJSense(TINY)
    from mrgen.training.distributed import init_generator
    start.reset_parameters(init_generator(0, 0, "cpu", 0))
    assert _eval_loss(method.model, phantom) < _eval_loss(start, phantom) - 0.01
    # interrupted at 6, resumed to 12: bit-identical weights
    ckpt = tmp_path / "b.ckpt"
    train_djsense(examples, TINY, TRAIN, tmp_path / "b.pt",
                  EngineOptions(steps=6, checkpoint=ckpt))
    _, resumed = train_djsense(examples, TINY, TRAIN, tmp_path / "b.pt",
                               EngineOptions(steps=12, checkpoint=ckpt, resume=True))
    for (name, a), b in zip(method.model.state_dict().items(),
                            resumed.model.state_dict().values()):
        assert torch.equal(a, b), name
    from mrgen.djsense.training import load_djsense

    loaded, meta = load_djsense(first)
    assert meta["kind"] == "djsense" and meta["architecture"]["map_kernel"] == [7, 5]
    assert meta["training"]["steps"] == 12


def test_cli_train_and_infer_at_other_masks(phantom_h5, tmp_path):
    run = _cli()
    model = tmp_path / "m.pt"
    res = run("train", "djsense", phantom_h5, model, *CLI_TINY, "--steps", "3",
              "--central-slices", "0")
    assert res.exit_code == 0, res.output
    import h5py

    with h5py.File(phantom_h5) as f:
        ref = f["reconstruction_rss"][:]
    from mrgen.metrics import ssim

    for spec in ("random-exact:2:0.25", "equispaced:6:0.125"):
        out = tmp_path / f"out{spec[:5]}{spec[-3:]}.npy"
        res = run("djsense", phantom_h5, out, "--model", model, "--mask-spec", spec,
                  "--maps-out", tmp_path / "maps.npy", "--image-out", tmp_path / "im.npy")
        assert res.exit_code == 0, res.output
        image = np.load(out)
        assert image.shape == ref.shape and np.isfinite(image).all()
        assert ssim(ref, image) > 0.3
    assert np.load(tmp_path / "maps.npy").shape == (4, 4, 32, 32)
    assert np.load(tmp_path / "im.npy").dtype == np.complex64
    res = run("djsense", phantom_h5, tmp_path / "l2.npy", "--mode", "l2", "--mask-spec",
              "random-exact:4:0.16", "--unrolls", "2", "--map-kernel", "7", "5")
    assert res.exit_code == 0, res.output


@pytest.mark.parametrize("args", [
    ["djsense", "{h5}", "{tmp}/o.npy", "--mode", "l2", "--model", "djsense-brain-small"],
    ["djsense", "{h5}", "{tmp}/o.npy", "--mode", "l2", "--map-kernel", "4", "5"],
    ["djsense", "{tmp}/missing.h5", "{tmp}/o.npy", "--mode", "l2"],
    ["djsense", "{h5}", "{tmp}/o.npy", "--model", "{tmp}/missing.pt"],
    ["train", "djsense", "{h5}", "{tmp}/m.pt", "--mode", "l2"],
    ["train", "djsense", "{h5}", "{tmp}/m.pt", "--mask", "bogus:4"],
    ["train", "djsense", "{h5}", "{tmp}/m.pt", "--unrolls", "0"],
])
def test_cli_bad_input_exits_2_with_one_line(args, phantom_h5, tmp_path):
    run = _cli()
    res = run(*[a.format(h5=phantom_h5, tmp=tmp_path) for a in args])
    assert res.exit_code == 2, res.output
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, res.stderr


def test_reference_is_the_noise_free_rss_when_the_file_has_the_truth(tmp_path):
    """With image and maps (mrgen phantom / dataset) the target is |image| x RSS(maps), not the
    noisy reconstruction_rss (whose noise floor the network would learn); fastMRI-like files
    keep reconstruction_rss."""
    from mrgen import io
    from mrgen.coils import rss
    from mrgen.djsense.training import load_examples
    from mrgen.phantom import make_phantom

    noisy = make_phantom(size=(32, 32), slices=2, coils=4, noise=0.05, seed=1)
    full, fastmri = tmp_path / "full.h5", tmp_path / "fastmri.h5"
    io.write_bundle(str(full), {"kspace": noisy.kspace, "reconstruction_rss": noisy.rss,
                                "image": noisy.image, "maps": noisy.maps})
    io.write_bundle(str(fastmri), {"kspace": noisy.kspace, "reconstruction_rss": noisy.rss})
    clean = np.abs(noisy.image) * rss(torch.from_numpy(noisy.maps)).numpy()
    with_truth = load_examples([str(full)], 0)
    assert np.allclose(with_truth.reference[0], clean[0], atol=1e-5)
    assert np.abs(noisy.rss[0] - clean[0]).max() > 0.05        # the noise the target avoids
    assert with_truth.description["files"][0]["reference"].startswith("noise-free")
    assert np.array_equal(load_examples([str(fastmri)], 0).reference[0], noisy.rss[0])
