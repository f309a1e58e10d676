"""Where the corpus's images come from: MR data that ship inside installed packages.

Every source belongs to exactly one split, and a subject to exactly one source, so validation
and test never share a volume (or a person) with training:

- train
  - ``mni152``: the MNI152 2009 T1 template and its grey/white-matter probability maps
    (nilearn), turned into T1w, T2w, PD and FLAIR images (``contrasts``) and the template
    itself (T1w-template); axial, coronal and sagittal slices of the brain band, each 1 mm
    slice once, the contrasts taking turns;
  - ``dicom``: the MR images among pydicom's and pydicom-data's test files, one uncompressed
    variant of each (the JPEG/RLE/big-endian copies are the same pixels);
  - ``itk-other``: MR slices of the ITK examples that are not BrainWeb: FatMRISlice (abdomen)
    and RatLungSlice1/2 (rat thorax).
- validation: ``itk-kmeans``, the real T1 head volume of ITK's k-means example (128 x 128 x
  62 at 2 x 2 x 3 mm), its coronal (acquired) slices through the brain.
- test: ``itk-brainweb``, the BrainWeb-derived slices of the ITK examples (one subject):
  BrainT1Slice and BrainProtonDensitySlice (T1 and PD of one slice), the three slices of
  BrainProtonDensity3Slices and the complex slice itkBrainSliceComplex (its own phase kept).

Not used: ITK's BrainMidSagittalSlice.png, which looks like a separate sagittal scan but is
the BrainWeb test subject (its row 85 equals column 90 of BrainT1Slice.png pixel for
pixel), and the other BrainWeb derivatives (BrainProtonDensitySlice*, ResampleImageFilter*);
VisibleWoman* (cryosection photographs, not MR); the Debian package mricron-data (Colin27
and others), kept for independent evaluation.

A source whose package is missing raises one DataError that names the package to install.
Images are returned as float64 (complex128 for the complex slice) in display orientation,
square pixels, row 0 at the top.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError
from . import contrasts

ITK_DATA = Path("/usr/share/doc/insighttoolkit5-examples/examples/Data")
ITK_HINT = "apt-get install insighttoolkit5-examples"
PIP_HINT = "pip install 'mrgen[corpus]'"


@dataclass(frozen=True)
class Entry:
    """One source slice: where it comes from and what it shows."""

    source: str
    subject: str
    contrast: str
    orientation: str
    slice: int
    path: str
    anatomy: str

    def key(self) -> str:
        """What seeds the slice's draws. BrainWeb's PD slice and the first slice of its
        3-slice PD volume agree in everything else, so that source's keys name the file too
        (only there: the other sources' keys, and so their draws, stay as they were)."""
        key = f"{self.source}/{self.subject}/{self.contrast}/{self.orientation}/{self.slice}"
        return key + (f"/{Path(self.path).name}" if self.source == "itk-brainweb" else "")


def _require_module(source: str, module: str, package: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise DataError(f"source {source} needs the Python package {package}: "
                        f"{PIP_HINT}") from None


def _require_itk(source: str, names) -> list[Path]:
    paths = [ITK_DATA / name for name in names]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise DataError(f"source {source} needs the ITK example data ({missing[0]} is "
                        f"missing): {ITK_HINT}")
    return paths


def _read_png(source: str, path: Path) -> np.ndarray:
    image_module = _require_module(source, "PIL.Image", "pillow")
    with image_module.open(path) as picture:
        return np.asarray(picture.convert("L"), dtype=np.float64)


def _band(mask: np.ndarray, axis: int, fraction: float) -> np.ndarray:
    """Indices along ``axis`` whose mask area is at least ``fraction`` of the largest."""
    area = mask.sum(axis=tuple(a for a in range(mask.ndim) if a != axis))
    return np.nonzero(area >= fraction * area.max())[0]


class Source:
    """A source of slices: its split, the check that its package is there, its entries and
    the image of each entry."""

    name = ""
    split = ""
    # Slices whose brain area is below this fraction of the largest are left out.
    band = 0.3

    def check(self) -> None:
        """Raise DataError naming the package to install when the data are not there."""

    def files(self) -> list[Path]:
        """Every file the source reads."""
        return []

    def entries(self) -> list[Entry]:
        raise NotImplementedError

    def load(self, entry: Entry, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
        """The image of ``entry`` and the sequence parameters it was made with ({} for a
        measured image); ``rng`` draws those of a synthesised contrast."""
        raise NotImplementedError


class Mni152(Source):
    name, split = "mni152", "train"
    subject = "MNI152 2009a sym (population average)"
    orientations = ("axial", "coronal", "sagittal")
    axes = {"axial": 2, "coronal": 1, "sagittal": 0}
    names = ("mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
             "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz",
             "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz")
    contrast_cycle = contrasts.SYNTHETIC + (contrasts.TEMPLATE,)

    def __init__(self):
        self._volumes = None

    def check(self) -> None:
        _require_module(self.name, "nibabel", "nibabel")
        _require_module(self.name, "nilearn.datasets", "nilearn")

    def files(self) -> list[Path]:
        datasets = _require_module(self.name, "nilearn.datasets", "nilearn")
        folder = Path(datasets.__file__).parent / "data"
        return [folder / name for name in self.names if (folder / name).exists()]

    def volumes(self) -> dict:
        """The T1 template, GM and WM maps, CSF fraction and brain mask, (x, y, z) in RAS."""
        if self._volumes is None:
            datasets = _require_module(self.name, "nilearn.datasets", "nilearn")
            t1, gm, wm = (np.asarray(load(resolution=1).dataobj, dtype=np.float32) for load in (
                datasets.load_mni152_template, datasets.load_mni152_gm_template,
                datasets.load_mni152_wm_template))
            # nilearn's brain mask (load_mni152_brain_mask): the template above 0.2. What the
            # mask holds beyond GM and WM is CSF (ventricles, sulci).
            mask = (t1 > 0.2).astype(np.float32)
            self._volumes = {"t1": t1, "gm": gm, "wm": wm, "mask": mask,
                             "csf": np.clip(mask - gm - wm, 0.0, 1.0)}
        return self._volumes

    def entries(self) -> list[Entry]:
        mask = self.volumes()["mask"]
        out = []
        for turn, orientation in enumerate(self.orientations):
            for index in _band(mask, self.axes[orientation], self.band):
                contrast = self.contrast_cycle[(int(index) + turn) % len(self.contrast_cycle)]
                out.append(Entry(self.name, self.subject, contrast, orientation, int(index),
                                 f"nilearn:{self.names[0]}", f"brain, {orientation} slice "
                                 f"{int(index)} of the MNI152 template (1 mm)"))
        return out

    def plane(self, volume: np.ndarray, orientation: str, index: int) -> np.ndarray:
        """A slice in display orientation: axial anterior up and coronal superior up, both
        radiological (the subject's left on the right); sagittal superior up, anterior left."""
        if orientation == "axial":
            return volume[:, :, index].T[::-1, ::-1]
        if orientation == "coronal":
            return volume[:, index, :].T[::-1, ::-1]
        return volume[index, :, :].T[::-1, ::-1]

    def load(self, entry, rng):
        vols = self.volumes()
        if entry.contrast == contrasts.TEMPLATE:
            return self.plane(vols["t1"], entry.orientation, entry.slice).astype(np.float64), {}
        params = contrasts.draw_parameters(entry.contrast, rng)
        params["tissue_temperature"] = contrasts.draw_temperature(rng)
        fractions = {t: self.plane(vols[t], entry.orientation, entry.slice)
                     for t in ("gm", "wm", "csf")}
        fractions = contrasts.crisp_fractions(fractions, params["tissue_temperature"])
        return contrasts.synthesize(fractions, params), params


# pydicom's and pydicom-data's MR test images: file, package, subject (patient ID), orientation,
# anatomy and contrast as seen (PNG of each looked at) and as the headers give them.
DICOM_FILES = (
    ("emri_small.dcm", "pydicom-data", "emri_small", "unknown", "T1w",
     "head: cortex and white matter in a 64 x 64 crop, 10 slices (ImageType T1)"),
    ("MR_small.dcm", "pydicom", "4MR1", "axial", "T2w",
     "head, 20 mm field of view at 0.31 mm, spin echo TR 4000 ms TE 240 ms (heavily "
     "T2-weighted; likely the inner ear)"),
    ("MR2_UNCR.dcm", "pydicom-data", "5MR2", "oblique coronal", "T1w",
     "shoulder: humeral head, deltoid, acromion; spin echo TR 350 ms TE 27 ms"),
    ("MR-SIEMENS-DICOM-WithOverlays.dcm", "pydicom-data", "021234567", "axial", "T1w",
     "abdomen: liver with a marked lesion, kidneys, spine; 3D spoiled gradient echo "
     "TR 5.5 ms TE 2.8 ms"),
)


class Dicom(Source):
    name, split = "dicom", "train"

    def __init__(self):
        self._pixels = {}

    def check(self) -> None:
        _require_module(self.name, "pydicom", "pydicom")
        self.files()

    def files(self) -> list[Path]:
        return [self.locate(name, package) for name, package, *_ in DICOM_FILES]

    def locate(self, name: str, package: str) -> Path:
        """The installed file (never a download: pydicom's get_testdata_file may fetch)."""
        if package == "pydicom":
            pydicom = _require_module(self.name, "pydicom", "pydicom")
            path = Path(pydicom.__file__).parent / "data" / "test_files" / name
        else:
            from importlib import metadata

            try:
                found = [f for f in metadata.files("pydicom-data") or ()
                         if f.name == name and f.parent.name == "data"]
            except metadata.PackageNotFoundError:
                found = []
            path = Path(found[0].locate()) if found else None
        if path is None or not path.is_file():
            raise DataError(f"source {self.name} needs {name} from the Python package "
                            f"{package}: {PIP_HINT}")
        return path

    def pixels(self, name: str, package: str) -> np.ndarray:
        """The frames (F, H, W) float64 of a file, rescaled as its header says."""
        if name not in self._pixels:
            pydicom = _require_module(self.name, "pydicom", "pydicom")
            data = pydicom.dcmread(self.locate(name, package))
            frames = np.asarray(data.pixel_array, dtype=np.float64)
            frames = frames * float(data.get("RescaleSlope", 1) or 1) + \
                float(data.get("RescaleIntercept", 0) or 0)
            if data.get("PhotometricInterpretation") == "MONOCHROME1":
                frames = frames.max() - frames
            self._pixels[name] = frames if frames.ndim == 3 else frames[None]
        return self._pixels[name]

    def entries(self) -> list[Entry]:
        out = []
        for name, package, subject, orientation, contrast, anatomy in DICOM_FILES:
            path = self.locate(name, package)
            for index in range(self.pixels(name, package).shape[0]):
                out.append(Entry(self.name, subject, contrast, orientation, index, str(path),
                                 anatomy))
        return out

    def load(self, entry, rng):
        name, package = next((n, p) for n, p, s, *_ in DICOM_FILES
                             if s == entry.subject)
        return self.pixels(name, package)[entry.slice].copy(), {}


class ItkFiles(Source):
    """A source of ITK example files, PNG or MetaImage, listed first in each of ``items``."""

    items: tuple = ()

    def check(self) -> None:
        self.files()
        _require_module(self.name, "PIL.Image", "pillow")

    def files(self) -> list[Path]:
        return _require_itk(self.name, [item[0] for item in self.items])



class ItkOther(ItkFiles):
    name, split = "itk-other", "train"
    items = (  # file, subject, contrast, orientation, anatomy
        ("FatMRISlice.png", "FatMRISlice", "unknown (fat bright)", "axial",
         "abdomen: bowel, psoas muscles, lumbar spine, subcutaneous fat"),
        ("RatLungSlice1.mha", "rat-lung", "unknown", "coronal",
         "rat thorax and upper abdomen (lungs, heart, liver); respiratory state 1"),
        ("RatLungSlice2.mha", "rat-lung", "unknown", "coronal",
         "rat thorax and upper abdomen (lungs, heart, liver); respiratory state 2"),
    )

    def entries(self) -> list[Entry]:
        out = []
        for index, (name, subject, contrast, orientation, anatomy) in enumerate(self.items):
            out.append(Entry(self.name, subject, contrast, orientation, index,
                             str(ITK_DATA / name), anatomy))
        return out

    def load(self, entry, rng):
        path = Path(entry.path)
        if path.suffix == ".png":
            return _read_png(self.name, path), {}
        from .metaimage import read_metaimage

        return read_metaimage(path)[0].astype(np.float64), {}


class ItkKmeans(Source):
    name, split = "itk-kmeans", "validation"
    volume_name = "KmeansTest_T1UCharRaw.nii.gz"
    mask_name = "KmeansTest_T1RawSkullStrip.nii.gz"

    def __init__(self):
        self._volume = None

    def check(self) -> None:
        self.files()
        _require_module(self.name, "nibabel", "nibabel")

    def files(self) -> list[Path]:
        return _require_itk(self.name, (self.volume_name, self.mask_name))

    def volume(self) -> tuple[np.ndarray, np.ndarray]:
        """The head and its skull-stripped brain, axes (L, S, A): 128 x 128 x 62."""
        if self._volume is None:
            nibabel = _require_module(self.name, "nibabel", "nibabel")
            head, brain = (np.asarray(nibabel.load(p).dataobj, dtype=np.float64)
                           for p in self.files())
            self._volume = head, brain > 0
        return self._volume

    def entries(self) -> list[Entry]:
        _, brain = self.volume()
        path = str(ITK_DATA / self.volume_name)
        return [Entry(self.name, "KmeansTest_T1", "T1w", "coronal", int(index), path,
                      f"head, coronal slice {int(index)} (2 x 2 mm pixels, 3 mm apart)")
                for index in _band(brain, 2, self.band)]

    def load(self, entry, rng):
        head, _ = self.volume()
        # axis 0 runs to the subject's left, axis 1 up: rows superior first, radiological
        return head[:, ::-1, entry.slice].T.copy(), {}


class ItkBrainweb(ItkFiles):
    name, split = "itk-brainweb", "test"
    subject = "brainweb-normal"
    items = (  # file, contrast, slices in the file
        ("BrainT1Slice.png", "T1w", 1),
        ("BrainProtonDensitySlice.png", "PD", 1),
        ("BrainProtonDensity3Slices.mha", "PD", 3),
        ("itkBrainSliceComplex.mha", "PD-complex", 1),
    )

    def entries(self) -> list[Entry]:
        return [Entry(self.name, self.subject, contrast, "axial", index, str(ITK_DATA / name),
                      "brain (BrainWeb simulation), axial")
                for name, contrast, count in self.items for index in range(count)]

    def load(self, entry, rng):
        from .metaimage import read_metaimage

        path = Path(entry.path)
        if path.suffix == ".png":
            return _read_png(self.name, path), {}
        array, header = read_metaimage(path)
        if int(header.get("ElementNumberOfChannels", "1")) == 2:   # real, imaginary
            return array[..., 0].astype(np.float64) + 1j * array[..., 1], {}
        return np.asarray(array, dtype=np.float64).reshape(-1, *array.shape[-2:])[
            entry.slice], {}


SOURCES = {cls.name: cls for cls in (Mni152, Dicom, ItkOther, ItkKmeans, ItkBrainweb)}
SPLITS = ("train", "validation", "test")


def split_sources(split: str) -> tuple[str, ...]:
    """The names of the sources of ``split``."""
    return tuple(name for name, cls in SOURCES.items() if cls.split == split)
