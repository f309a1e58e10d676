"""mrgen traj: non-Cartesian k-space trajectories (radial, golden-angle, spiral)."""

from typing import Annotated

import typer

from .cli import command, info, save
from .options import AT_LEAST_1, POSITIVE

SUMMARY = "Non-Cartesian trajectories: radial, golden-angle radial, variable-density spiral."


@command("traj", SUMMARY, outputs=("output",), not_images=("output",),
         ranges={"samples": AT_LEAST_1, "shots": AT_LEAST_1, "size": AT_LEAST_1,
                 "turns": POSITIVE, "alpha": POSITIVE},
         choices={"kind": ("radial", "golden", "spiral")})
def traj(
    output: Annotated[str, typer.Argument(
        metavar="OUTPUT", help="The trajectory: .cfl as BART's (3, samples, spokes), "
        "otherwise (shots, samples, 2) float32.", show_default=False)],
    kind: Annotated[str, typer.Option(
        "--kind", help="radial (uniform angles pi p / shots) | golden (golden-angle radial, "
        "111.25 degrees) | spiral (variable-density arms).")] = "radial",
    samples: Annotated[int, typer.Option(
        "--samples", help="Samples per spoke or arm.")] = 512,
    shots: Annotated[int, typer.Option(
        "--shots", help="Spokes or spiral arms.")] = 64,
    size: Annotated[int, typer.Option(
        "--size", help="Image matrix N the trajectory covers: coordinates in [-N/2, N/2) "
        "cycles per FOV (radial: --samples 2N is 2x readout oversampling).")] = 256,
    turns: Annotated[float, typer.Option(
        "--turns", help="spiral: turns per arm.")] = 16.0,
    alpha: Annotated[float, typer.Option(
        "--alpha", help="spiral: radius ~ t^alpha; 1 uniform (Archimedean), > 1 denser "
        "centre.")] = 1.5,
):
    """Write a 2D trajectory in cycles per field of view (BART's units): sample n of spoke p
    of a radial one lies at (n - (samples-1)/2) size/samples (sin theta_p, cos theta_p) along
    (H, W), theta_p = pi p / shots (radial) or p x 111.25 degrees (golden). With --samples
    equal to --size these are `bart traj -r -x S -y P` (-G for golden); with --samples 2 N,
    BART's trajectory scaled by 1/2. A spiral arm a has radius (N/2 - 1/2) t^alpha at angle
    2 pi (turns t + a / shots), t in [0, 1]. Use it with `mrgen phantom --traj` and the
    --traj option of zf, sense, ipalm and langevin."""
    from mrgen import io
    from mrgen.io.trajectory import trajectory_for_file
    from mrgen.trajectory import make_trajectory

    coords = make_trajectory(kind, samples, shots, size, turns, alpha)
    array, layout = trajectory_for_file(output, coords)
    save(output, array, io.roles.ANY, layout=layout)
    info(f"traj: {kind}, {shots} shots x {samples} samples, grid {size} x {size}")
