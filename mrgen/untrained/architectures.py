"""Un-trained image generators (Darestani, Heckel 2021, Section 4): ConvDecoder, Deep Decoder and a small DIP.

Each generator owns its fixed random input (a buffer drawn once from a seeded generator), so
``net()`` returns an image volume (1, out_channels, H, W). All weights are initialised from the
same ``torch.Generator`` (PyTorch's default schemes, drawn on the CPU), so a seed gives the
same network on every device.

- ``convdecoder`` (Darestani & Heckel): ``layers - 1`` blocks of nearest-neighbour upsampling
  to the next size, 3x3 convolution (no bias), ReLU, batch norm; one more 3x3 conv-ReLU-BN at
  full size; a final 1x1 convolution (no bias) to the output channels. The input is (channels,
  *input_size*) and the sizes grow geometrically from the input size to the output size, as
  in the authors' code: size_n = ceil(input * (output / input)^(n / (layers - 1))).
- ``deepdecoder`` (Heckel & Hand 2019): the same layout with bilinear upsampling and 1x1
  convolutions. A 1x1 convolution commutes with (linear) bilinear upsampling, so each block
  convolves at the small size first and then upsamples: the same function, cheaper.
- ``dip`` (Ulyanov et al. 2018, "skip" network, small): ``layers`` encoder levels (3x3 conv
  stride 2, BN, LeakyReLU 0.2, 3x3 conv, BN, LeakyReLU), a 1x1 skip branch of
  ``SKIP_CHANNELS`` channels per level, and decoder levels (upsample to the level's size,
  concatenate the skip, 3x3 conv-BN-LeakyReLU, 1x1 conv-BN-LeakyReLU); a final 1x1 conv. Its
  input is noise of ``DIP_INPUT_CHANNELS`` channels at the full output size (input_size is
  not used).

Inputs are uniform noise in [0, 0.1) as in the authors' fitting code; batch norm right after
the first (bias-free) convolution makes the networks insensitive to that scale.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import UsageError

ARCHITECTURES = ("convdecoder", "deepdecoder", "dip")

# Defaults per architecture: Darestani, Heckel 2021, Table 10 (4x knee) for ConvDecoder and Deep Decoder;
# the DIP paper's own small configuration (5 levels of 128 channels) for dip.
DEFAULTS = {
    "convdecoder": {"layers": 8, "channels": 256},
    "deepdecoder": {"layers": 10, "channels": 368},
    "dip": {"layers": 5, "channels": 128},
}
DEFAULT_INPUT_SIZE = (8, 4)     # the authors' demo (fastMRI knee, 640 x 368)
INPUT_SCALE = 0.1               # uniform [0, 0.1) input noise, as the authors' fit()
SKIP_CHANNELS = 4               # DIP skip branches
DIP_INPUT_CHANNELS = 32         # DIP input noise channels (at full size)
LEAKY_SLOPE = 0.2               # DIP's LeakyReLU


def layer_sizes(input_size, out_shape, layers: int) -> list[tuple[int, int]]:
    """Spatial sizes after each of the ``layers - 1`` upsampling blocks (the last = out_shape).

    Geometric growth per axis from ``input_size`` to ``out_shape``, rounded up (the authors'
    ``convdecoder``): size_n = ceil(input * r^n), r = (out / input)^(1 / (layers - 1)).
    """
    if layers < 2:
        raise UsageError(f"--layers {layers}: needs at least 2 layers")
    (h0, w0), (h, w) = input_size, out_shape
    if h0 < 1 or w0 < 1:
        raise UsageError(f"--input-size {h0} {w0}: sizes must be positive")
    if h0 > h or w0 > w:
        raise UsageError(f"--input-size {h0} {w0}: larger than the image {h}x{w}")
    steps = layers - 1
    rh, rw = (h / h0) ** (1.0 / steps), (w / w0) ** (1.0 / steps)
    sizes = [(min(h, math.ceil(h0 * rh ** n - 1e-9)), min(w, math.ceil(w0 * rw ** n - 1e-9)))
             for n in range(1, steps)]
    return sizes + [(int(h), int(w))]


class _Generator(nn.Module):
    """A network with a fixed random input buffer: ``net()`` is the generated volume."""

    def forward(self, x: torch.Tensor | None = None) -> torch.Tensor:
        return self.generate(self.input if x is None else x)

    def generate(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class ConvDecoder(_Generator):
    """Upsample (nearest or bilinear) -> conv -> ReLU -> BN per layer, then a 1x1 conv."""

    def __init__(self, out_shape, out_channels: int, layers: int, channels: int,
                 input_size=DEFAULT_INPUT_SIZE, kernel: int = 3, upsample: str = "nearest"):
        super().__init__()
        self.sizes = layer_sizes(input_size, out_shape, layers)
        self.upsample = upsample
        self.kernel = kernel
        self.register_buffer("input", torch.zeros(1, channels, *input_size))
        self.convs = nn.ModuleList(
            nn.Conv2d(channels, channels, kernel, padding=(kernel - 1) // 2, bias=False)
            for _ in range(layers))
        self.norms = nn.ModuleList(nn.BatchNorm2d(channels) for _ in range(layers))
        self.out = nn.Conv2d(channels, out_channels, 1, bias=False)

    def _up(self, x, size):
        if self.upsample == "nearest":
            return F.interpolate(x, size=size, mode="nearest")
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False)

    def generate(self, x):
        n = len(self.convs)
        for i in range(n):
            if i < n - 1:
                if self.kernel == 1:   # a 1x1 conv commutes with upsampling: convolve small
                    x = self._up(self.convs[i](x), self.sizes[i])
                else:
                    x = self.convs[i](self._up(x, self.sizes[i]))
            else:
                x = self.convs[i](x)
            x = self.norms[i](F.relu(x))
        return self.out(x)


class DeepDecoder(ConvDecoder):
    """Heckel & Hand's Deep Decoder: bilinear upsampling and 1x1 convolutions."""

    def __init__(self, out_shape, out_channels, layers, channels, input_size=DEFAULT_INPUT_SIZE):
        super().__init__(out_shape, out_channels, layers, channels, input_size, kernel=1,
                         upsample="bilinear")


def _conv_bn_act(cin, cout, kernel, stride=1):
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride=stride, padding=(kernel - 1) // 2, bias=False),
        nn.BatchNorm2d(cout), nn.LeakyReLU(LEAKY_SLOPE))


class SkipNet(_Generator):
    """A small DIP encoder-decoder with skip connections (Ulyanov et al.'s ``skip``)."""

    def __init__(self, out_shape, out_channels: int, layers: int, channels: int,
                 skip_channels: int = SKIP_CHANNELS, input_channels: int = DIP_INPUT_CHANNELS):
        super().__init__()
        if layers < 1:
            raise UsageError(f"--layers {layers}: the dip network needs at least 1 level")
        self.register_buffer("input", torch.zeros(1, input_channels, *out_shape))
        ins = [input_channels] + [channels] * (layers - 1)
        self.down = nn.ModuleList(
            nn.Sequential(_conv_bn_act(cin, channels, 3, stride=2),
                          _conv_bn_act(channels, channels, 3)) for cin in ins)
        self.skip = nn.ModuleList(_conv_bn_act(cin, skip_channels, 1) for cin in ins)
        self.up = nn.ModuleList(
            nn.Sequential(_conv_bn_act(channels + skip_channels, channels, 3),
                          _conv_bn_act(channels, channels, 1)) for _ in ins)
        self.out = nn.Conv2d(channels, out_channels, 1, bias=False)

    def generate(self, x):
        skips = []
        for down, skip in zip(self.down, self.skip):
            skips.append(skip(x))
            x = down(x)
        for level in reversed(range(len(self.up))):
            s = skips[level]
            x = F.interpolate(x, size=s.shape[-2:], mode="bilinear", align_corners=False)
            x = self.up[level](torch.cat([s, x], dim=1))
        return self.out(x)


def resolve_config(arch: str, layers: int | None = None, channels: int | None = None):
    """(layers, channels) with the architecture's defaults filled in."""
    if arch not in ARCHITECTURES:
        raise UsageError(f"--arch {arch}: unknown; use one of {', '.join(ARCHITECTURES)}")
    layers = DEFAULTS[arch]["layers"] if layers is None else int(layers)
    channels = DEFAULTS[arch]["channels"] if channels is None else int(channels)
    if channels < 1:
        raise UsageError(f"--channels {channels}: must be positive")
    return layers, channels


def build_generator(arch: str, out_shape, out_channels: int, layers: int | None = None,
                    channels: int | None = None, input_size=DEFAULT_INPUT_SIZE,
                    generator: torch.Generator | None = None) -> nn.Module:
    """A freshly initialised generator with its fixed input, on the CPU.

    ``generator`` (a CPU ``torch.Generator``) draws the weights (PyTorch's default schemes:
    Kaiming-uniform with a = sqrt(5) for convolutions; batch norm starts at weight 1, bias 0)
    and then the input noise; without it the global RNG is used. The global RNG is left as
    it was either way.
    """
    layers, channels = resolve_config(arch, layers, channels)
    out_shape = (int(out_shape[0]), int(out_shape[1]))
    input_size = tuple(int(s) for s in (input_size or DEFAULT_INPUT_SIZE))
    with torch.random.fork_rng(devices=[]):   # module constructors draw from the global RNG
        if arch == "convdecoder":
            net = ConvDecoder(out_shape, out_channels, layers, channels, input_size)
        elif arch == "deepdecoder":
            net = DeepDecoder(out_shape, out_channels, layers, channels, input_size)
        else:
            net = SkipNet(out_shape, out_channels, layers, channels)
    _initialise(net, generator)
    return net


@torch.no_grad()
def _initialise(net: nn.Module, generator: torch.Generator | None) -> None:
    for module in net.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_uniform_(module.weight, a=math.sqrt(5), generator=generator)
        elif isinstance(module, nn.BatchNorm2d):
            module.reset_parameters()
    net.input.uniform_(0.0, INPUT_SCALE, generator=generator)


def count_parameters(net: nn.Module) -> int:
    """Number of trainable parameters (the fixed input and BN statistics are not counted)."""
    return sum(p.numel() for p in net.parameters() if p.requires_grad)
