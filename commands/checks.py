"""The checks ``@command`` runs on a command's arguments before its body.

Each command declares what its parameters are (input and output files, models, numeric ranges,
words); these checks are cheap (no torch, no data read), so a wrong argument is answered at
once and nothing is written.
"""

import math

import typer

_FLAG_WORDS = {"true", "false", "yes", "no", "on", "off", "1", "0"}


class ArgumentChecks:
    """The checks ``@command`` runs on a command's arguments before its body: cheap (no torch,
    no data read), so that a wrong argument is answered at once and nothing is written."""

    def __init__(self, inputs, outputs, files_out, models, ranges, one_of=(), precheck=None,
                 choices=None, not_images=()):
        self.inputs = [_Pick(spec) for spec in inputs]
        self.outputs = [_Pick(spec) for spec in outputs]
        self.files_out = [_Pick(spec) for spec in files_out]
        self.models = [_Pick(spec) for spec in models]
        self.ranges = dict(ranges)
        self.one_of = [tuple(group) for group in one_of]
        self.precheck = precheck
        self.choices = dict(choices or {})
        self.not_images = [_Pick(spec) for spec in not_images]   # among the outputs
        self.labels = {}
        self.crop_default = False   # --crop defaults to the k-space file's recon matrix

    def label(self, name: str) -> str:
        return self.labels.get(name) or "--" + name.strip("_").replace("_", "-")

    def names(self) -> set:
        picks = self.inputs + self.outputs + self.files_out + self.models + self.not_images
        return {p.name for p in picks} | set(self.ranges) | set(self.choices) | \
            {name for group in self.one_of for name in group}

    def run(self, kwargs, seed: int = 0, output_format: str | None = None) -> None:
        from mrgen.errors import UsageError
        from mrgen.io.refs import FORMATS

        if not 0 <= seed < 2 ** 64:
            raise UsageError(f"--seed {seed}: must be in [0, 2^64)")
        if output_format is not None and output_format not in FORMATS:
            raise UsageError(f"--format {output_format}: expected {' | '.join(FORMATS)}")
        for name, words in self.choices.items():
            value = kwargs.get(name)
            if value is not None and str(getattr(value, "value", value)) not in words:
                raise UsageError(f"{self.label(name)} {value}: expected "
                                 f"{' | '.join(w for w in words if w)}")
        if self.precheck is not None:
            self.precheck(kwargs)
        for group in self.one_of:
            if sum(kwargs.get(name) is not None for name in group) != 1:
                raise UsageError("give exactly one of " + " and ".join(
                    self.label(name) for name in group))
        self.check_numbers(kwargs)
        if "slice_" in kwargs:
            from mrgen.io.refs import parse_slices

            parse_slices(kwargs["slice_"])
        inputs = [(p.name, v) for p in self.inputs for v in p.values(kwargs)]
        for _, value in inputs:
            _check_input(value)
        models = [(p.name, v) for p in self.models for v in p.values(kwargs)]
        for name, value in models:
            label = self.label(name)
            _check_model(f"{label} " if label.startswith("--") else "", value)
        input_texts = [v for _, v in inputs]
        model_files = [v for _, v in models if _exists(v)]
        written, piped = [], []
        for picks, is_array in ((self.outputs, True), (self.files_out, False)):
            for pick in picks:
                for value in pick.values(kwargs):
                    written += check_target(value, is_array, input_texts, model_files,
                                            output_format if is_array else None)
                    piped += [self.label(pick.name)] if value == "-" else []
        for pick in self.not_images:
            for value in pick.values(kwargs):
                _check_not_image(value, self.label(pick.name), output_format)
        if len(piped) > 1:
            raise UsageError(f"{' and '.join(piped)}: only one output can go to standard output "
                             "(-)")
        if input_texts.count("-") > 1:
            raise UsageError("only one input can come from standard input (-)")
        if len(set(written)) < len(written):
            twice = next(p for p in written if written.count(p) > 1)
            raise UsageError(f"{twice}: given for two outputs; each output needs its own file")

    def check_numbers(self, kwargs) -> None:
        from mrgen.errors import UsageError

        for name, value in kwargs.items():
            values = value if isinstance(value, (tuple, list)) else (value,)
            rule = self.ranges.get(name)
            for item in values:
                if isinstance(item, str) and rule is not None and rule.words:
                    if item in rule.words:
                        continue
                    try:
                        item = float(item)
                    except ValueError:
                        words = " or ".join(w for w in rule.words if w)
                        raise UsageError(f"{self.label(name)} {value}: expected a number"
                                         + (f" or {words}" if words else "")) from None
                if isinstance(item, bool) or not isinstance(item, (int, float)):
                    continue
                if isinstance(item, float) and not math.isfinite(item):
                    raise UsageError(f"{self.label(name)} {_show(value)}: must be a finite "
                                     "number")
                problem = rule.problem(item) if rule is not None else None
                if problem:
                    raise UsageError(f"{self.label(name)} {_show(value)}: {problem}")


class _Pick:
    """A parameter name, optionally with a list index or slice (``files[1:-1]``) and words
    that are not file names (``init|ipalm|noise``)."""

    def __init__(self, spec: str):
        spec, *self.words = spec.split("|")
        self.name, _, index = spec.partition("[")
        self.index = None
        if index:
            parts = [int(p) if p.strip() else None for p in index.rstrip("]").split(":")]
            self.index = slice(*parts) if len(parts) > 1 else parts[0]

    def values(self, kwargs) -> list[str]:
        value = kwargs.get(self.name)
        if value is None:
            return []
        if isinstance(value, (list, tuple)):
            if self.index is None:
                picked = list(value)
            elif isinstance(self.index, slice):
                picked = list(value[self.index])
            else:
                picked = [value[self.index]] if -len(value) <= self.index < len(value) else []
        else:
            picked = [value]
        return [str(v) for v in picked if v is not None and str(v) not in self.words]


def labels(signature) -> dict:
    """How the user writes each parameter: its long option (--lam) or its argument's metavar."""
    from typing import get_args

    labels = {}
    for name, param in signature.parameters.items():
        info = next((m for m in get_args(param.annotation)[1:]
                     if isinstance(m, (typer.models.OptionInfo, typer.models.ArgumentInfo))),
                    None)
        if isinstance(info, typer.models.OptionInfo):
            # In Annotated[...] the first argument of typer.Option, kept as its default, is the
            # first declaration ("--eigen-crop").
            given = ([info.default] if isinstance(info.default, str) else []) + \
                list(info.param_decls or ())
            decls = [d.split("/")[0] for d in given if d.startswith("--")]
            labels[name] = decls[0] if decls else "--" + name.strip("_").replace("_", "-")
        elif isinstance(info, typer.models.ArgumentInfo):
            labels[name] = (info.metavar or name.strip("_")).upper().strip(".")
    return labels


def _show(value) -> str:
    if isinstance(value, (tuple, list)):
        return " ".join(_show(v) for v in value)
    return f"{value:g}" if isinstance(value, float) else str(value)


def _exists(text: str) -> bool:
    from pathlib import Path

    return Path(text).exists()


def _check_input(text) -> None:
    """An input array file must exist (both files of a BART pair) and be a file."""
    from mrgen.errors import DataError
    from mrgen.io.refs import parse_ref

    ref = parse_ref(text)
    for path in ref.files:
        if path.is_dir():
            raise DataError(f"{text}: is a folder, not an array file")
        if not path.exists():
            hint = ""
            if text.lower() in _FLAG_WORDS:
                hint = " (flags such as --quiet take no value)"
            elif ref.format == "cfl":
                hint = f" ({path} is missing)" if len(ref.files) > 1 and \
                    any(p.exists() for p in ref.files) else \
                    " (a name without a suffix is a BART .cfl/.hdr pair)"
            raise DataError(f"{text}: no such file{hint}")


def _check_model(label, text) -> None:
    """A model: an existing file, or the name of a shipped one."""
    from pathlib import Path

    from mrgen.errors import UsageError
    from mrgen.model_files import DATA, SHIPPED

    path = Path(text)
    if path.is_dir():
        raise UsageError(f"{label}{text}: is a folder, not a model file")
    if path.exists() or (DATA / f"{text}.pt").exists():
        return
    raise UsageError(f"{label}{text}: no such file, and not a shipped model "
                     f"(shipped: {', '.join(sorted(SHIPPED)) or 'none'})")


def check_target(text, is_array, inputs, models, output_format=None) -> list:
    """An output: a known array suffix (``is_array``; or ``output_format``, --format), a
    folder that exists and can be written, not a folder itself (except a DICOM series' own
    earlier folder), and not one of the inputs or models. Returns its resolved files."""
    import os
    from pathlib import Path

    from mrgen.errors import UsageError
    from mrgen.io.refs import ensure_distinct, parse_ref

    if text == "-" and output_format in (None, "npy"):
        return []
    series = False
    if is_array:
        ref = parse_ref(text, output_format)
        files, series = ref.files, ref.format == "dicom"
        ensure_distinct(text, inputs, output_format)
        others = [Path(m) for m in models]
    else:
        files = (Path(text),)
        others = [p for item in inputs for p in parse_ref(item).files] + [Path(m) for m in models]
    for other in others:
        if other.exists() and any(f.exists() and f.resolve() == other.resolve() for f in files):
            raise UsageError(f"{text}: output would overwrite the input {other}")
    for path in files:
        if path.is_dir() and not (series and _holds_only_dicom(path)):
            raise UsageError(f"{text}: is a folder; give a file name" if not series else
                             f"{text}: is a folder with other files than a DICOM series")
        folder = path.parent
        if not folder.is_dir():
            what = "is not a folder" if folder.exists() else "does not exist"
            raise UsageError(f"{text}: folder {folder} {what}")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise UsageError(f"{text}: cannot write in folder {folder} (permission denied)")
    return [p.resolve() for p in files]


def _check_not_image(text, label, output_format) -> None:
    """An output that holds maps or k-space cannot be NIfTI or DICOM (images only)."""
    from mrgen.errors import UsageError
    from mrgen.io.refs import IMAGE_FORMATS, parse_ref

    if text == "-" and output_format in (None, "npy"):
        return
    fmt = parse_ref(text, output_format).format
    if fmt in IMAGE_FORMATS:
        what = f"{label} holds" if label.startswith("--") else "it holds"
        how = f"--format {output_format}" if output_format else "its suffix"
        raise UsageError(f"{text}: NIfTI and DICOM outputs hold images (H, W) or (slices, H, "
                         f"W); {what} maps or k-space ({how}: write it as .npy, .h5 or .cfl)")


def _holds_only_dicom(folder) -> bool:
    """An earlier DICOM output (slice_*.dcm only), which a new series may replace."""
    return all(p.is_file() and p.suffix == ".dcm" for p in folder.iterdir())
