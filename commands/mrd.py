"""mrgen mrd: ISMRMRD (MRD) raw data to mrgen's k-space file."""

from typing import Annotated, Optional

import typer

from .cli import command, command_line, info

SUMMARY = "ISMRMRD (MRD) raw data to k-space: placed by the counters, pre-whitened."


def _precheck(args):
    from mrgen.errors import UsageError

    if not str(args["output"]).lower().endswith((".h5", ".hdf5", ".hdf")):
        raise UsageError(f"{args['output']}: the output holds several arrays; give an .h5 name")
    if args["average"] not in ("mean", "sum") and not args["average"].isdigit():
        raise UsageError(f"--average {args['average']}: expected mean, sum or an average's "
                         "index (0, 1, ...)")


@command("mrd", SUMMARY, inputs=("raw",), outputs=("output",), precheck=_precheck)
def mrd(
    raw: Annotated[str, typer.Argument(
        metavar="RAW", help="ISMRMRD/MRD HDF5 file (the 'dataset' group: xml header and data).",
        show_default=False)],
    output: Annotated[str, typer.Argument(
        metavar="OUT", help="mrgen/fastMRI .h5: kspace (slices, coils, H, W), mask, "
        "ismrmrd_header, and the header's geometry as attributes.", show_default=False)],
    average: Annotated[str, typer.Option(
        "--average", metavar="mean|sum|N", help="Readouts of several averages: their mean "
        "(each line over the times it was acquired), their sum, or only average N.")] = "mean",
    prewhiten: Annotated[Optional[bool], typer.Option(
        "--prewhiten/--no-prewhiten", help="Whiten the coil noise with the noise scan "
        "(default: when the file has one).", show_default=False)] = None,
):
    """Convert ISMRMRD (MRD) raw data to mrgen's k-space file, which every command reads.

    Cartesian readouts are placed by their counters: kspace_encode_step_1 along W (its
    encoding-limit centre at W/2), the readout along H (center_sample at H/2), so partial
    Fourier and asymmetric echoes stay zero where nothing was acquired. Slices, contrasts,
    phases, sets and repetitions form the slice axis (the counters of each slice are kept as
    attributes); averages are averaged, summed or selected (--average). Noise-scan readouts
    whiten the coil noise; readout oversampling is removed when the header's recon field of
    view is smaller than the encoded one. H is the readout, W the phase encoding, as in
    fastMRI; the header is kept as the ismrmrd_header dataset, so --crop defaults to the recon
    matrix in every command."""
    from mrgen import io
    from mrgen.io.mrd import read_mrd

    scan = read_mrd(raw, average if average in ("mean", "sum") else int(average), prewhiten)
    io.write_bundle(output, {"kspace": scan.kspace, "mask": scan.mask,
                             "ismrmrd_header": scan.xml}, command_line(), scan.attributes())
    slices, coils, height, width = scan.kspace.shape
    lines = int(scan.mask.reshape(-1, width).max(axis=0).sum())
    left_out = ", ".join(f"{n} {kind}" for kind, n in scan.skipped.items())
    info(f"{raw}: {slices} slice(s) x {coils} coils x {height} x {width}, {lines} of {width} "
         f"lines{', noise pre-whitened' if scan.prewhitened else ''}"
         f"{f'; readouts left out: {left_out}' if left_out else ''}")
