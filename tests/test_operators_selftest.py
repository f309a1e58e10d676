"""The linear operators of mrgen.linops: the self-test for every registered operator (adjoint,
normal, Hermitian positive semi-definite normal, to float32 precision), shape checks, and the
operators as iPALM, Deep J-Sense and the un-trained networks build them."""

import pytest
import torch

import mrgen.linops
from mrgen.linops import (FourierOp, LinearOperator, SenseMapsOp, SenseOp, check_operator)
from mrgen.nufft import Nufft

from .conftest import cufinufft_loads, requires_cuda


def crandn(*shape, gen):
    return torch.randn(*shape, generator=gen, dtype=torch.complex64)


def random_mask(*shape, gen, fraction=0.5):
    return (torch.rand(*shape, generator=gen) < fraction).float()


@pytest.mark.parametrize("name", sorted(LinearOperator.registry))
def test_every_registered_operator_passes_the_self_test(name):
    """A new operator class registers itself; without an example() this test fails."""
    gen = torch.Generator().manual_seed(0)
    check = check_operator(LinearOperator.registry[name].example(gen), generator=gen)
    assert check.passed, check


def test_the_registry_holds_the_library_operators():
    names = set(LinearOperator.registry)
    assert {"FourierOp", "SenseOp", "SenseMapsOp", "PaddedSenseOp", "KernelMapsOp"} <= names
    assert all(getattr(mrgen.linops, name) is LinearOperator.registry[name] for name in names
               if hasattr(mrgen.linops, name))


def test_the_self_test_finds_a_wrong_adjoint():
    class Scaled(FourierOp, register=False):
        def _adjoint(self, y):
            return 1.01 * super()._adjoint(y)

    gen = torch.Generator().manual_seed(1)
    check = check_operator(Scaled(random_mask(8, 6, gen=gen)), generator=gen)
    assert not check.passed and check.adjoint_error > 1e-3
    assert "Scaled" in str(check) and "FAILED" in str(check)
    assert "Scaled" not in LinearOperator.registry


def test_fourier_op_adjoint():
    gen = torch.Generator().manual_seed(1)
    mask = (torch.rand(16, 12, generator=gen) > 0.6).float()
    check = check_operator(FourierOp(mask), (2, 16, 12), gen)
    assert check.passed, check


@pytest.mark.parametrize("batch", [(), (3,)])
@pytest.mark.parametrize("real_image", [False, True])
def test_sense_op_adjoint_and_normal(batch, real_image):
    gen = torch.Generator().manual_seed(2)
    maps = crandn(*batch, 4, 16, 12, gen=gen)
    mask = (torch.rand(*batch, 16, 12, generator=gen) > 0.5).float()
    check = check_operator(SenseOp(maps, mask, real_image=real_image), generator=gen)
    assert check.passed, check


def test_sense_op_with_weights_squares_the_mask_in_its_normal():
    gen = torch.Generator().manual_seed(6)
    weights = torch.rand(2, 10, 8, generator=gen)
    check = check_operator(SenseOp(crandn(2, 3, 10, 8, gen=gen), weights), generator=gen)
    assert check.passed, check


def test_sense_op_per_slice_mask_applies_per_slice():
    gen = torch.Generator().manual_seed(3)
    maps = crandn(2, 3, 8, 8, gen=gen)
    mask = torch.zeros(2, 8, 8)
    mask[0, :, ::2] = 1
    mask[1, :, 1::2] = 1
    k = SenseOp(maps, mask).forward(crandn(2, 8, 8, gen=gen))
    assert torch.all(k[0, :, :, 1::2] == 0) and torch.all(k[1, :, :, ::2] == 0)


def test_shapes_are_checked_with_a_clear_message():
    gen = torch.Generator().manual_seed(4)
    op = SenseOp(crandn(2, 3, 10, 8, gen=gen), random_mask(10, 8, gen=gen))
    assert op.input_shape == (2, 10, 8) and op.output_shape == (2, 3, 10, 8)
    with pytest.raises(ValueError, match=r"SenseOp.forward: expected a tensor of shape "
                                         r"\(\.\.\., 2, 10, 8\), got \(2, 10, 9\)"):
        op.forward(crandn(2, 10, 9, gen=gen))
    with pytest.raises(ValueError, match=r"SenseOp.adjoint: .*\(\.\.\., 2, 3, 10, 8\), got "
                                         r"\(2, 4, 10, 8\)"):
        op.adjoint(crandn(2, 4, 10, 8, gen=gen))
    # Free leading axes, and the operator's size-1 axes broadcast.
    assert op.forward(crandn(5, 2, 10, 8, gen=gen)).shape == (5, 2, 3, 10, 8)
    shared = SenseOp(crandn(1, 3, 10, 8, gen=gen))
    assert shared.forward(crandn(4, 10, 8, gen=gen)).shape == (4, 3, 10, 8)
    with pytest.raises(ValueError, match="FourierOp.normal"):
        FourierOp(random_mask(10, 8, gen=gen)).normal(crandn(8, 10, gen=gen))
    with pytest.raises(ValueError, match="free sizes"):
        check_operator(SenseMapsOp(crandn(10, 8, gen=gen)), generator=gen)


def test_ipalm_operators_pass_the_self_test():
    """u -> M F(S u) (real image) and c -> M F(u c), as iPALM's JointProblem builds them."""
    from mrgen.ipalm import JointProblem, initialise
    from mrgen.phantom import make_phantom

    gen = torch.Generator().manual_seed(7)
    ph = make_phantom("shepp-logan", size=(24, 20), coils=3, seed=1)
    kspace, mask = torch.from_numpy(ph.kspace), random_mask(1, 24, 20, gen=gen)
    u, c, _ = initialise(kspace, mask)
    problem = JointProblem(kspace, mask, None, 1.0)
    unit_maps = problem.normalise(c)[0]
    for op, x in ((problem.image_operator(unit_maps), u), (problem.maps_operator(u), unit_maps)):
        check = check_operator(op, x, gen)
        assert check.passed, check
    # The data term is the squared residual of the image operator.
    residual = problem.image_operator(unit_maps).forward(u) - problem.z
    assert torch.allclose(problem.data(u, c), 0.5 * residual.abs().square().sum((1, 2, 3)))


def test_untrained_forward_models_pass_the_self_test():
    from mrgen.untrained.fit import forward_model

    gen = torch.Generator().manual_seed(8)
    sampled = random_mask(12, 10, gen=gen)
    for maps, shape in ((None, (4, 12, 10)), (crandn(4, 12, 10, gen=gen), (12, 10))):
        check = check_operator(forward_model(sampled, maps), shape, gen)
        assert check.passed, check


@requires_cuda
def test_operators_on_cuda_match_cpu():
    gen = torch.Generator().manual_seed(5)
    maps, x = crandn(4, 16, 12, gen=gen), crandn(16, 12, gen=gen)
    mask = (torch.rand(16, 12, generator=gen) > 0.5).float()
    cpu = SenseOp(maps, mask).normal(x)
    gpu = SenseOp(maps.cuda(), mask.cuda()).normal(x.cuda()).cpu()
    assert torch.allclose(cpu, gpu, atol=1e-4)
    nufft_on_cuda = cufinufft_loads()
    for name in sorted(LinearOperator.registry):
        op = LinearOperator.registry[name].example(gen)
        if isinstance(getattr(op, "nufft", None), Nufft) and not nufft_on_cuda:
            continue                                # test_nufft's CUDA test says it skipped
        for key, value in vars(op).items():
            if isinstance(value, (torch.Tensor, Nufft)):
                setattr(op, key, value.to("cuda"))
        check = check_operator(op, generator=gen, device="cuda")
        assert check.passed, check
