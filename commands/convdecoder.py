"""mrgen convdecoder: un-trained network reconstruction (Darestani, Heckel 2021, ConvDecoder)."""

from enum import Enum
from typing import Annotated, Optional

import typer

from mrgen.apps.convdecoder import PRESETS

from .cli import command, info, save
from .options import AT_LEAST_0, AT_LEAST_1, FRACTION, POSITIVE, CropOption, SliceOption

SUMMARY = "Un-trained network reconstruction: fit a ConvDecoder (or Deep Decoder, DIP) to k-space."


def _preset_help(key: str) -> str:
    show = lambda v: ("arch default" if v is None else " ".join(map(str, v))  # noqa: E731
                      if isinstance(v, tuple) else v if isinstance(v, str) else f"{v:g}")
    return "[default: --preset: " + ", ".join(f"{name} {show(values[key])}"
                                              for name, values in PRESETS.items()) + "]"


class Arch(str, Enum):
    convdecoder = "convdecoder"
    deepdecoder = "deepdecoder"
    dip = "dip"


@command("convdecoder", SUMMARY, inputs=("kspace", "mask", "maps"),
         outputs=("output", "runs_out"),
         ranges={"layers": AT_LEAST_1, "channels": AT_LEAST_1, "input_size": AT_LEAST_1,
                 "iters": AT_LEAST_1, "lr": POSITIVE, "runs": AT_LEAST_1, "crop": AT_LEAST_1,
                 "holdout": FRACTION, "patience": AT_LEAST_0},
         choices={"preset": ("auto", "paper", "cpu"), "lr_schedule": ("constant", "cosine")})
def convdecoder(
    kspace: Annotated[str, typer.Argument(
        metavar="KSPACE", help="Under-sampled multi-coil k-space (coils, H, W) or (slices, "
        "coils, H, W).", show_default=False)],
    output: Annotated[str, typer.Argument(
        metavar="OUT", help="Output image (H, W) or (slices, H, W).", show_default=False)],
    mask: Annotated[Optional[str], typer.Option(
        help="Sampling mask (1 = sampled; (W,), (H, W) or (slices, H, W)). Without it, the "
        "non-zero pattern of the k-space is the sampling.", show_default=False)] = None,
    maps: Annotated[Optional[str], typer.Option(
        help="Sensitivity maps (coils, H, W): fit the complex image x through the SENSE model "
        "M F (S x) (2 output channels) instead of every coil image.",
        show_default=False)] = None,
    arch: Annotated[Arch, typer.Option(
        "--arch", help="Generator: convdecoder (nearest upsampling, 3x3 convs), deepdecoder "
        "(bilinear upsampling, 1x1 convs) or dip (small encoder-decoder with skips).")]
        = Arch.convdecoder,
    preset: Annotated[str, typer.Option(
        "--preset", metavar="auto|paper|cpu", help="The configuration for every option "
        "marked --preset that is not given: paper (Darestani, Heckel 2021: 8 layers x 256 "
        "channels, 2500 iterations; a GPU job), cpu (5 layers x 32 channels, 8x8 input, up "
        "to 8000 iterations with early stopping on 5% of the sampled k-space held out, "
        "channels_last; chosen by measurement to finish 256 x 256 x 8 coils within 10 "
        "minutes on 2 cores). auto: paper on CUDA, cpu otherwise.")] = "auto",
    layers: Annotated[Optional[int], typer.Option(
        "--layers", help="Layers (dip: encoder levels). Architecture defaults: 8 for "
        "convdecoder, 10 for deepdecoder, 5 for dip; --preset cpu: 5 for convdecoder. "
        + _preset_help("layers"), show_default=False)] = None,
    channels: Annotated[Optional[int], typer.Option(
        "--channels", help="Channels per layer. Architecture defaults: 256 for convdecoder, "
        "368 for deepdecoder, 128 for dip; --preset cpu: 32 for convdecoder. "
        + _preset_help("channels"), show_default=False)] = None,
    input_size: Annotated[Optional[tuple[int, int]], typer.Option(
        "--input-size", help="Spatial size H W of the fixed random input (convdecoder, "
        "deepdecoder). " + _preset_help("input_size"), show_default=False)] = None,
    iters: Annotated[Optional[int], typer.Option(
        "--iters", help="Adam iterations per network (at most, with early stopping). "
        + _preset_help("iters"), show_default=False)] = None,
    lr: Annotated[Optional[float], typer.Option(
        "--lr", help="Adam learning rate. " + _preset_help("lr"), show_default=False)] = None,
    lr_schedule: Annotated[Optional[str], typer.Option(
        "--lr-schedule", metavar="constant|cosine", help="The learning rate over the "
        "iterations: constant (the authors') or cosine (from --lr down to 0 at --iters). "
        + _preset_help("schedule"), show_default=False)] = None,
    holdout: Annotated[Optional[float], typer.Option(
        "--holdout", help="Fraction of the sampled k-space locations held out of the fit: "
        "the output kept is the one with the lowest loss on them (0: none, keep the lowest "
        "fitted loss). Data consistency puts them back. " + _preset_help("holdout"),
        show_default=False)] = None,
    patience: Annotated[Optional[int], typer.Option(
        "--patience", help="Early stopping: end the fit this many iterations after the "
        "held-out loss was lowest (0: run every iteration). " + _preset_help("patience"),
        show_default=False)] = None,
    runs: Annotated[int, typer.Option(
        "--runs", help="Fit this many independently initialised networks and average their "
        "images (Darestani, Heckel 2021, Section 6).")] = 1,
    runs_out: Annotated[Optional[str], typer.Option(
        "--runs-out", help="Also write every run's image: (runs, H, W) or (runs, slices, H, W).",
        show_default=False)] = None,
    dc: Annotated[bool, typer.Option(
        "--dc/--no-dc", help="Data consistency (Step 2): put the measured samples back into "
        "the network's k-space before combining coils.")] = True,
    crop: CropOption = None,
    complex_output: Annotated[bool, typer.Option(
        "--complex", help="Keep the complex image (needs --maps; RSS has no phase).")] = False,
    amp: Annotated[bool, typer.Option(
        "--amp", help="Mixed precision: run the network under bfloat16 autocast (with "
        "channels_last on CUDA). Faster on recent GPUs; slower on most CPUs.")] = False,
    slice_: SliceOption = None,
):
    """Un-trained neural network reconstruction (Darestani, Heckel 2021): a randomly
    initialised convolutional generator with a fixed random input is fitted to the measured
    k-space of each slice alone, without training data.

    Without --maps (Step 1-A) the network outputs the real and imaginary parts of every coil
    image (2 x coils channels), is fitted with the loss ||M F G(w) - y||^2, and the image is
    the root-sum-of-squares of the coil images. With --maps (Step 1-B) it outputs the complex
    image x (2 channels), the loss is ||M F (S x) - y||^2, and the image is |x| (complex with
    --complex). Data consistency (Step 2, on unless --no-dc) then replaces the sampled k-space
    locations of the network's coil images by the measurements before the coil combination
    (RSS, or combination with the maps). --crop centre-crops the result.

    Architectures (--arch): convdecoder (default): per layer nearest-neighbour upsampling to
    the next size, 3x3 convolution without bias, ReLU, batch norm; one more 3x3
    conv-ReLU-BN at full size; a final 1x1 convolution. The input is (channels, --input-size)
    uniform noise in [0, 0.1) and the layer sizes grow geometrically from --input-size to the
    image size, as in the authors' code. --preset paper: 8 layers of 256 channels (Darestani,
    Heckel 2021, Table 10, 4x knee; for 8x the paper found 6 layers, 64 channels, --input-size 4 4 best, for
    brains 5 layers of 64). deepdecoder: the same with bilinear upsampling and 1x1
    convolutions (Heckel & Hand; default 10 layers of 368 channels, Table 10). dip: a small
    encoder-decoder with skip connections in the style of Ulyanov et al.'s deep image prior
    (--layers levels of --channels, default 5 x 128; 4-channel skips; 32-channel noise input
    at full size; --input-size is not used).

    Fitting: Adam with --lr 0.008 (the authors' code) for --iters 2500 iterations (--preset
    paper: the authors' demo; their study ran 20,000-25,000), keeping the network output with
    the lowest loss seen. With --holdout F a random fraction F of the sampled locations (drawn
    from --seed) is left out of the loss and the output kept is the one with the lowest loss
    on them; --patience P then ends the fit P iterations after that minimum, before the
    network fits the noise of the samples (Darestani, Heckel 2021 fix the iteration count
    instead). k-space is scaled as the authors do, so that the initial network image and the
    zero-filled image have the same norm, and the result scaled back. The loss is the mean
    squared error over the measured samples. Each slice is fitted separately; --runs K fits K
    networks with seeds derived from --seed (the same for every slice, so --slice reproduces
    a slice of a full reconstruction) and averages their images; --runs-out keeps them all.
    The same --seed gives the same output on CPU (GPU convolutions are not bit-reproducible).

    Presets (--preset auto, the default: paper on CUDA, cpu otherwise; the command says which
    it chose and why; options given on the command line override the preset's values): paper
    takes about 4.5 CPU-hours at 256 x 256 with 8 coils, a GPU job. cpu was chosen by
    measurement (benchmarks/bench_convdecoder.py) to finish 256 x 256 with 8 coils within 10
    minutes on 2 cores at least 5 dB above zero-filling: the 5 x 32 network costs about 0.13
    s an iteration on one core instead of 11.6 s (channels_last saves 10-20%) and still gains
    after 3000 iterations, so its iteration count is what the time allows: up to 8000 (about
    8 minutes on 2 idle cores), ended 1000 iterations after the held-out minimum (on the
    README's phantom it stopped at 7875 iterations, 46.9 dB against 39.6 after 3000 and
    ipalm-TV's 47.4; a patience of 300 stopped on the plateaus of Adam's held-out loss at
    2200-3600); a cosine --lr-schedule did worse than the constant rate. Its network size
    applies to convdecoder only (deepdecoder and dip keep their defaults).

    Speed: the fit loop does not synchronise with the host (the best output is tracked on the
    device; the progress bar on stderr reads the loss every 25 iterations, early stopping the
    held-out losses as often). On CUDA, cuDNN autotuning and fused Adam are used; --amp adds
    bfloat16 autocast and channels_last (the FFTs, the loss and the optimiser stay in
    float32)."""
    from mrgen import io
    from mrgen.acquisition import read_acquisition
    from mrgen.apps.convdecoder import UntrainedSettings, convdecoder_app

    from .cli import device, settings

    inputs = [kspace, mask, maps]
    acq = read_acquisition(kspace, mask, maps, io.parse_slices(slice_))
    options = UntrainedSettings(arch.value, layers, channels, input_size, iters, lr, runs, dc,
                                crop, not complex_output, amp, preset, holdout, patience,
                                None, lr_schedule)
    dev = device()
    result = convdecoder_app(acq, options, settings.seed, dev, not settings.quiet,
                             log=lambda line: info(f"convdecoder: {line}"))
    residual, ran = result["residual"].reshape(runs, -1), result["iterations"].reshape(-1)
    done = (f"{ran.min().item()} to {ran.max().item()}" if ran.min() < ran.max()
            else f"{ran.max().item()}")
    info(f"{arch.value}: {residual.shape[1]} slice(s) x {runs} run(s) x {done} iterations on "
         f"{dev}; relative data residual ||M F G(w) - y|| / ||y|| of the fitted networks: "
         f"{residual.min().item():.3g} to {residual.max().item():.3g}")
    save(output, acq.squeeze(result["image"]), io.roles.IMAGE, inputs=inputs)
    if runs_out is not None:
        runs_image = result["runs"] if acq.has_slices else result["runs"][:, 0]
        save(runs_out, runs_image, io.roles.IMAGE, inputs=inputs)
