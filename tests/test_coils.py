"""Coil compression of maps (mrgen.coils.compress_maps): the normal operator it keeps."""

import torch

from mrgen.coils import compress_maps
from mrgen.linops import SenseOp
from mrgen.masks import make_mask
from mrgen.phantom import birdcage_maps


def _maps(coils=8, size=64):
    maps = torch.as_tensor(birdcage_maps(coils, (size, size))).to(torch.complex64)[None]
    return maps / maps.abs().square().sum(1, keepdim=True).sqrt()


def _normal(maps, x):
    mask = torch.from_numpy(make_mask("random-exact:4:0.08", maps.shape[-2:], seed=1))[None]
    return SenseOp(maps, mask, real_image=True).normal(x)


def test_all_virtual_coils_keep_the_normal_operator_exactly():
    maps = _maps()
    every = compress_maps(maps, keep=1.01)
    assert every.shape == maps.shape
    x = torch.rand(1, 64, 64, generator=torch.Generator().manual_seed(0))
    exact = _normal(maps, x)
    assert float((_normal(every, x) - exact).norm() / exact.norm()) < 1e-5


def test_fewer_coils_hold_the_asked_energy_and_never_enlarge_the_operator():
    maps = _maps()
    fewer = compress_maps(maps, keep=0.99)
    count = fewer.shape[1]
    assert count < 8
    share = fewer.abs().square().sum() / maps.abs().square().sum()
    assert share >= 0.99
    if count > 1:                                    # one coil fewer would not have held it
        assert fewer[:, :-1].abs().square().sum() / maps.abs().square().sum() < 0.99
    generator = torch.Generator().manual_seed(1)
    for _ in range(3):                               # x^T (A^*A - compressed) x >= 0
        x = torch.randn(1, 64, 64, generator=generator)
        full, less = (x * _normal(maps, x)).sum(), (x * _normal(fewer, x)).sum()
        assert float(less) <= float(full) * (1 + 1e-5)
        assert float(less) >= 0.95 * float(full)
