"""mrgen phantom: simulated multi-coil k-space with ground truth (no download)."""

from typing import Annotated, Optional

import typer

from .cli import check_output, command, info, load, save
from .options import AT_LEAST_0, AT_LEAST_1, GridOption

SUMMARY = "Simulate multi-coil k-space with ground truth (Shepp-Logan, brain, or your image)."


@command("phantom", SUMMARY, inputs=("from_", "traj"),
         outputs=("output", "image_out", "maps_out", "rss_out"),
         not_images=("output", "maps_out"),
         ranges={"coils": AT_LEAST_1, "slices": AT_LEAST_1, "phase": AT_LEAST_0,
                 "noise": AT_LEAST_0, "oversample": AT_LEAST_1, "grid": AT_LEAST_1},
         choices={"kind": ("shepp-logan", "brain")}, precheck=lambda args: _precheck(args))
def phantom(
    output: Annotated[str, typer.Argument(
        metavar="OUTPUT", help="Output: an .h5 file gets kspace, reconstruction_rss, maps and "
        "image (fastMRI layout); any other name gets the k-space only.", show_default=False)],
    kind: Annotated[str, typer.Option(
        "--kind", help="shepp-logan (sigpy's modified phantom) | brain (axial slices of the "
        "MNI152 T1 template; needs nilearn, the extra named anatomy).")] = "shepp-logan",
    from_: Annotated[Optional[str], typer.Option(
        "--from", metavar="FILE", help="Use this image (H, W) or stack (slices, H, W) as the "
        "object instead of --kind.", show_default=False)] = None,
    size: Annotated[Optional[tuple[int, int]], typer.Option(
        "--size", metavar="H W", help="Matrix size (default 256 256; --from keeps its size). "
        "Other sizes are zero-padded to this aspect and resampled with antialiasing.",
        show_default=False)] = None,
    coils: Annotated[int, typer.Option(
        "--coils", metavar="C", help="Number of birdcage coils.")] = 8,
    slices: Annotated[Optional[int], typer.Option(
        "--slices", metavar="S", help="Number of slices, spread evenly over the default range "
        "or the --slice-index range (default 1; all of a --slice-index range or --from "
        "stack).", show_default=False)] = None,
    slice_index: Annotated[Optional[str], typer.Option(
        "--slice-index", metavar="I|A:B|I,J,K", help="Which slices of the source volume: the "
        "3D Shepp-Logan (H, H, W) planes, the template's axial slices (0..188; default range "
        "50:121) or the --from stack. Separate training and held-out data with disjoint "
        "ranges.", show_default=False)] = None,
    phase: Annotated[float, typer.Option(
        "--phase", metavar="RADIANS", help="Peak amplitude of the smooth random phase "
        "(0: a real object).")] = 1.0,
    noise: Annotated[float, typer.Option(
        "--noise", metavar="SIGMA", help="Std of the complex Gaussian noise per k-space "
        "sample, for an image of max magnitude 1.")] = 0.0,
    oversample: Annotated[int, typer.Option(
        "--oversample", metavar="F", help="Simulate on an F-times finer grid and keep the "
        "central k-space (avoids the inverse crime); 1 = off.")] = 1,
    image_out: Annotated[Optional[str], typer.Option(
        "--image-out", metavar="FILE", help="Also write the complex ground-truth image.",
        show_default=False)] = None,
    maps_out: Annotated[Optional[str], typer.Option(
        "--maps-out", metavar="FILE", help="Also write the true sensitivity maps.",
        show_default=False)] = None,
    rss_out: Annotated[Optional[str], typer.Option(
        "--rss-out", metavar="FILE", help="Also write the RSS of the (noisy) fully sampled "
        "k-space.", show_default=False)] = None,
    traj: Annotated[Optional[str], typer.Option(
        "--traj", metavar="FILE", help="Non-Cartesian: write the samples (coils, shots, "
        "samples) at this trajectory's points (mrgen traj, bart traj), by the NUFFT on the "
        "--oversample grid (at least 2: no inverse crime).", show_default=False)] = None,
    grid: GridOption = None,
):
    """Simulate a fully sampled multi-coil acquisition with its ground truth, for tests and
    demonstrations that need no download.

    The object (sigpy's modified Shepp-Logan phantom, axial slices of the MNI152 T1 brain
    template with --kind brain, or your own image with --from) is given a smooth random phase,
    normalised to max magnitude 1, multiplied by birdcage coil sensitivities (sum of squares
    1 at every pixel) and Fourier transformed (centred, orthonormal); complex Gaussian noise of
    std --noise is added to every k-space sample. With an .h5 OUTPUT the file holds, in the
    fastMRI layout, kspace (slices, coils, H, W), reconstruction_rss (the RSS of the noisy
    coil images), maps and image (the complex noise-free truth), and the attributes max, norm,
    acquisition and the settings (slice_indices: positions in the source volume). The slice
    axis is present with --slices, a --slice-index range or list, or a --from stack.

    --oversample F builds object and maps on an F-times finer grid over the same field of
    view and keeps the central H x W of its k-space (divided by F), so the data do not come
    from the discrete model a reconstruction uses; image is then the same low-pass of the fine
    object, and maps are sampled on the target grid. --seed gives the phase and the noise:
    the same seed gives bit-identical output.

    --traj FILE samples the fine coil images at the trajectory's points instead (NUFFT on the
    F-times finer grid, F at least 2); a .cfl OUTPUT is then BART's (1, samples, spokes,
    coils), and --rss-out and the .h5's reconstruction_rss stay the Cartesian reference. The
    image grid is --size (or --grid, its synonym with --traj), else the --from image's, else
    the one zf --traj infers from the trajectory: N x N with N = 2 ceil(max |k|).

    Examples: mrgen phantom sl.h5; mrgen phantom --kind brain --slices 8 --slice-index 50:100
    --noise 0.01 --oversample 2 train.h5; mrgen phantom ksp.npy --coils 4 --size 128 128
    --maps-out maps.npy --image-out truth.npy.
    """
    from mrgen import io
    from mrgen.errors import UsageError
    from mrgen.phantom import check_request, keeps_slice_axis, make_phantom, parse_slice_index

    from .cli import command_line, settings

    outputs = [o for o in (output, image_out, maps_out, rss_out) if o is not None]
    if len({str(o) for o in outputs}) != len(outputs):
        raise UsageError("the outputs must be distinct files")
    for target in outputs:
        check_output(target, [from_])
    check_request(kind, size, from_ is not None)
    selection = parse_slice_index(slice_index)
    images = None if from_ is None else load(from_, io.roles.IMAGE)
    coords, size = (None, size) if traj is None else _trajectory(traj, size or grid, images)
    result = make_phantom(kind, size, coils, slices, selection, phase, noise,
                          oversample if coords is None else max(oversample, 2),
                          settings.seed, images, coords)
    arrays = result.arrays(keeps_slice_axis(slices, selection, images))
    label = f"from {from_}" if from_ is not None else kind
    inputs = [from_, traj]
    ref = io.parse_ref(output)
    if ref.format == "h5" and ref.dataset is None:
        io.write_bundle(output, {"kspace": arrays["kspace"], "reconstruction_rss": arrays["rss"],
                                 "maps": arrays["maps"], "image": arrays["image"]},
                        command=command_line(), attrs=result.attributes(label))
    else:
        from mrgen.io.trajectory import samples_for_file

        kspace, layout = samples_for_file(output, arrays["kspace"]) if traj else \
            (arrays["kspace"], None)
        save(output, kspace, io.roles.KSPACE, inputs=inputs, layout=layout)
    for path, name, role in ((image_out, "image", io.roles.IMAGE),
                             (maps_out, "maps", io.roles.MAPS),
                             (rss_out, "rss", io.roles.REFERENCE)):
        if path is not None:
            save(path, arrays[name], role, inputs=inputs)
    info(result.summary(label, arrays["kspace"].shape))


def _precheck(args):
    from mrgen.errors import UsageError

    if args["grid"] is not None and args["traj"] is None:
        raise UsageError("--grid needs --traj (without it, --size sets the matrix)")
    if args["grid"] is not None and args["size"] is not None:
        raise UsageError("--grid and --size exclude each other: with --traj they are the same "
                         "image grid")


def _trajectory(path, size, images):
    """The trajectory file's coordinates and the phantom's grid (``size``, else the --from
    image's, else ``grid_for``'s as zf --traj infers it), checked against each other."""
    from mrgen.io.trajectory import read_trajectory
    from mrgen.trajectory import check_trajectory, grid_for

    coords = read_trajectory(path)
    if size is None and images is None:
        size = grid_for(coords)
    grid = size or images.shape[-2:]
    check_trajectory(coords, tuple(grid), path)
    return coords, size
