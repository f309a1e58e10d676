"""FFT, crop/pad, coil combination: unitarity, adjointness, conventions (the linear operators'
self-test is tests/test_operators_selftest.py)."""

import numpy as np
import pytest
import torch

from mrgen.coils import combine, null_space_residual, rss
from mrgen.fft import fft2c, ifft2c
from mrgen.resize import center_crop, center_pad, crop_or_pad


def crandn(*shape, gen=None, device="cpu"):
    gen = gen or torch.Generator().manual_seed(0)
    re = torch.randn(*shape, generator=gen)
    im = torch.randn(*shape, generator=gen)
    return torch.complex(re, im).to(device)


def inner(a, b):
    return torch.vdot(a.flatten().to(torch.complex128), b.flatten().to(torch.complex128))


@pytest.mark.parametrize("shape", [(16, 12), (15, 9), (3, 10, 7)])
def test_fft_is_unitary_and_inverse(shape):
    x = crandn(*shape)
    k = fft2c(x)
    assert torch.allclose(torch.linalg.vector_norm(k), torch.linalg.vector_norm(x), rtol=1e-5)
    assert torch.allclose(ifft2c(k), x, atol=1e-5)


@pytest.mark.parametrize("h,w", [(16, 12), (15, 9)])
def test_fft_is_centred(h, w):
    """DC of a constant image lands at (H//2, W//2); a centred delta has a flat spectrum."""
    k = fft2c(torch.ones(h, w, dtype=torch.complex64))
    peak = np.unravel_index(int(k.abs().argmax()), (h, w))
    assert tuple(int(i) for i in peak) == (h // 2, w // 2)
    delta = torch.zeros(h, w, dtype=torch.complex64)
    delta[h // 2, w // 2] = 1
    spectrum = fft2c(delta)
    assert torch.allclose(spectrum, torch.full_like(spectrum, 1 / np.sqrt(h * w)), atol=1e-6)


def test_fft_matches_numpy_convention():
    x = crandn(12, 10).numpy()
    ref = np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(x), norm="ortho"))
    assert np.allclose(fft2c(torch.from_numpy(x)).numpy(), ref, atol=1e-5)


@pytest.mark.parametrize("small,big", [((5, 4), (9, 8)), ((6, 6), (7, 10))])
def test_crop_and_pad_are_adjoint(small, big):
    x, y = crandn(2, *big), crandn(2, *small)
    assert abs(inner(center_crop(x, small), y) - inner(x, center_pad(y, big))) < 1e-4
    assert torch.equal(center_crop(center_pad(y, big), small), y)


def test_crop_follows_fastmri_offsets():
    x = torch.arange(7 * 6).reshape(7, 6)
    assert torch.equal(center_crop(x, (4, 3)), x[1:5, 1:4])
    assert crop_or_pad(x, (9, 4)).shape == (9, 4)


def test_rss_combine_and_null_space():
    gen = torch.Generator().manual_seed(4)
    maps = crandn(4, 8, 8, gen=gen)
    maps = maps / rss(maps)
    image = crandn(8, 8, gen=gen)
    coil_images = maps * image
    assert torch.allclose(rss(coil_images), image.abs(), atol=1e-5)
    assert torch.allclose(combine(coil_images, maps), image, atol=1e-5)
    assert null_space_residual(coil_images, maps).abs().max() < 1e-5
    wrong = maps.roll(1, dims=0)
    assert null_space_residual(coil_images, wrong).abs().max() > 0.1


def test_fit_maps_prefers_mrgen_slice_then_set_order():
    from mrgen.shapes import fit_maps

    maps = np.arange(2 * 2 * 3 * 4 * 4).reshape(2, 2, 3, 4, 4).astype(np.complex64)
    # (slices=2, sets=2, C, H, W) for k-space (2, C, H, W): first set of each slice.
    assert np.array_equal(fit_maps(maps, (2, 3, 4, 4)), maps[:, 0])
    assert np.array_equal(fit_maps(maps[0], (3, 4, 4)), maps[0, 0])


@pytest.mark.parametrize("size", [(8, 6), (7, 6), (8, 5)])
@pytest.mark.parametrize("real_image", [False, True])
@pytest.mark.parametrize("sampling", ["2d", "columns", "rows", "full", "none"])
def test_sense_normal_is_the_adjoint_of_the_forward_at_any_size(size, real_image, sampling):
    """SenseOp.normal is a circular convolution in the bare FFT (the centring shifts
    cancel), over the axes the mask varies along only (1D sampling: one axis; no mask:
    none): A^H A x at any size, also when one set of maps serves per-slice masks."""
    from mrgen.linops import SenseOp
    from mrgen.linops.sense import normal_kernel

    g = torch.Generator().manual_seed(0)
    maps = torch.randn(1, 3, *size, dtype=torch.complex128, generator=g)
    mask = (torch.rand(2, *size, generator=g) > 0.5).double()
    if sampling == "columns":
        mask = mask[:, :1, :].expand(2, *size)
    elif sampling == "rows":
        mask = mask[:, :, :1].expand(2, *size)
    elif sampling == "full":
        mask = torch.full((2, *size), 0.5, dtype=torch.float64)   # weights, no axis varies
    x = torch.randn(2, *size, dtype=torch.float64 if real_image else torch.complex128,
                    generator=g)
    op = SenseOp(maps, None if sampling == "none" else mask, real_image=real_image)
    expected = op.adjoint(op.forward(x))
    got = op.normal(x)
    assert got.shape == expected.shape and got.dtype == expected.dtype
    assert torch.allclose(got, expected, atol=1e-12)
    dims = {"2d": (-2, -1), "columns": (-1,), "rows": (-2,), "full": (), "none": ()}[sampling]
    assert normal_kernel(op.mask)[1] == dims
