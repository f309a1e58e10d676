"""Un-trained network reconstruction of an acquisition (``mrgen convdecoder``).

Imports nothing heavy at module level: the command's help shows the presets.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..acquisition import Acquisition

# Two configurations; an option not given takes its value from the preset. layers and
# channels None: the architecture's default; the cpu preset's network size is ConvDecoder's
# (deepdecoder and dip keep their defaults). paper: Darestani, Heckel 2021 (Table 10, 4x knee;
# the authors' demo: 2500 iterations of Adam at 0.008, 8x4 input), a GPU job (about 4.5
# CPU-hours at 256 x 256 with 8 coils). cpu: chosen by measurement at 256 x 256 with 8 coils
# (the README's phantom, 4x random-exact mask; benchmarks/bench_convdecoder.py): seconds per
# iteration on one core: 8 x 256 11.6 (7.6 channels_last), 6 x 64 0.47, 5 x 48 0.27,
# 5 x 32 from an 8x8 input 0.14 (0.125 channels_last). bfloat16 autocast (--amp) on a CPU
# with AMX tiles, 2 threads: 1.56x an iteration, but its held-out minimum came at 5100
# iterations and the image at 44.02 dB against float32's 46.92 (minimum at 6875): off.
# 5 x 32 is still gaining at 3000 iterations (PSNR 23.1 dB after 100, 31.5 after 1000, 37.5
# after 2000, 39.6 after 3000; zero-filled 19.4), so the iteration count is what the time
# allows: 8000 finish within 10 minutes on 2 idle cores (16.5 iterations a second). Early
# stopping holds out 5% of the sampled locations; the fit keeps the output with the lowest
# held-out loss and ends 1000 iterations after it. Traced every 50 iterations over 9000 (the
# README's phantom; a BrainWeb test slice with 30 dB noise, 4x 1D, 8% ACS), the held-out
# minimum and the best PSNR came together (7500: 45.52 dB; 8900: 29.93), and under Adam's
# constant rate the held-out loss has plateaus and spikes (the phantom's 2.4e-3 at 4500,
# 3.7e-2 at 5000, 1.7e-3 at 6000): on these traces a patience of 300 would have stopped at
# 3000 and 2200 iterations (39.3 and 26.9 dB; the bench run with 300 stopped at 3600, 40.6
# dB), 500 at 8000 and 7700, 1000 only at the cap. A cosine learning-rate decay over
# 3000 iterations gave 37.2 dB, less than the constant rate.
PRESETS = {
    "paper": {"layers": None, "channels": None, "input_size": (8, 4), "iters": 2500,
              "lr": 0.008, "schedule": "constant", "holdout": 0.0, "patience": 0,
              "channels_last": False},
    "cpu": {"layers": 5, "channels": 32, "input_size": (8, 8), "iters": 8000,
            "lr": 0.008, "schedule": "constant", "holdout": 0.05, "patience": 1000,
            "channels_last": True},
}
NETWORK_KEYS = ("layers", "channels", "input_size")   # the cpu preset's: ConvDecoder's only


@dataclass
class UntrainedSettings:
    arch: str = "convdecoder"          # convdecoder | deepdecoder | dip
    layers: int | None = None          # None: the preset's, else the architecture's default
    channels: int | None = None
    input_size: tuple[int, int] | None = None
    iters: int | None = None
    lr: float | None = None
    runs: int = 1                      # networks averaged
    dc: bool = True                    # put the measured samples back before combining
    crop: tuple[int, int] | None = None
    magnitude: bool = True
    amp: bool = False                  # bfloat16 autocast
    preset: str = "auto"               # auto (paper on CUDA, cpu elsewhere), paper, cpu
    holdout: float | None = None       # fraction of the sampled k-space held out (0: none)
    patience: int | None = None        # early stopping: iterations after the held-out minimum
    channels_last: bool | None = None
    schedule: str | None = None        # the learning rate: constant or cosine (to 0)


def resolve_preset(preset: str, device) -> tuple[str, str]:
    """(preset, why): ``auto`` is paper on CUDA and cpu elsewhere."""
    from ..errors import UsageError

    if preset not in ("auto", *PRESETS):
        raise UsageError(f"--preset {preset}: choose auto, paper or cpu")
    kind = getattr(device, "type", str(device).split(":")[0])
    if preset == "auto":
        chosen = "paper" if kind == "cuda" else "cpu"
        return chosen, f"--preset auto on {kind}"
    return preset, f"--preset {preset}"


def with_preset(settings: UntrainedSettings, device) -> tuple[UntrainedSettings, str]:
    """The settings with every None filled from the preset, and a line saying what was chosen
    and why."""
    chosen, why = resolve_preset(settings.preset, device)
    values = PRESETS[chosen]
    filled = {}
    for key, value in values.items():
        if key in NETWORK_KEYS and settings.arch != "convdecoder" and key != "input_size":
            value = None
        if getattr(settings, key) is None:
            filled[key] = value
    settings = replace(settings, preset=chosen, **filled)
    return settings, f"preset {chosen} ({why}): {describe(settings)}"


def describe(settings: UntrainedSettings) -> str:
    from ..untrained import resolve_config

    layers, channels = resolve_config(settings.arch, settings.layers, settings.channels)
    size = (f", input {settings.input_size[0]}x{settings.input_size[1]}"
            if settings.arch != "dip" else "")
    stop = (f", early stopping on {settings.holdout:.0%} of the sampled k-space held out "
            f"(patience {settings.patience})" if settings.holdout and settings.patience else
            f", {settings.holdout:.0%} of the sampled k-space held out" if settings.holdout
            else "")
    layout = ", channels_last" if settings.channels_last else ""
    return (f"{settings.arch} {layers} layers x {channels} channels{size}, up to "
            f"{settings.iters} iterations, lr {settings.lr:g}"
            f"{' (cosine to 0)' if settings.schedule == 'cosine' else ''}{stop}{layout}"
            f"{', bf16 autocast' if settings.amp else ''}")


def convdecoder_app(acq: Acquisition, settings: UntrainedSettings, seed: int, device,
                    progress: bool = False, log=None) -> dict:
    """``mrgen.untrained.fit_untrained`` on every slice: image (S, H, W), runs (runs, S, H, W),
    residual (runs, S), iterations (runs, S), ... (see there); the maps select the SENSE
    variant. Options left None take the preset's values (``with_preset``); ``log`` gets the
    line that says which and why, and the result's ``settings`` the filled settings."""
    from ..resize import check_crop
    from ..untrained import fit_untrained

    if not settings.magnitude and acq.maps is None:
        from ..errors import UsageError

        raise UsageError("--complex: needs --maps (an RSS image has no phase)")
    settings, line = with_preset(settings, device)
    if log is not None:
        log(line)
    result = fit_untrained(
        acq.kspace, acq.mask, acq.maps, arch=settings.arch, layers=settings.layers,
        channels=settings.channels, input_size=tuple(settings.input_size), iters=settings.iters,
        lr=settings.lr, runs=settings.runs, seed=seed, dc=settings.dc,
        crop=check_crop(settings.crop, acq.image_shape), magnitude=settings.magnitude,
        amp=settings.amp, progress=progress, device=device, holdout=settings.holdout,
        patience=settings.patience, channels_last=settings.channels_last,
        schedule=settings.schedule)
    return {**result, "settings": settings}
