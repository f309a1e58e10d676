"""mrgen dataset and mrgen.corpus: the training corpus from MR data that ship in packages."""

import importlib.util
import json
import sys

import h5py
import numpy as np
import pytest
import torch

from mrgen.corpus import augment, contrasts, sources
from mrgen.corpus.build import CorpusOptions, Item, make_slice, plan_corpus, place
from mrgen.corpus.maps import random_coil_maps
from mrgen.corpus.metaimage import read_metaimage, write_metaimage
from mrgen.errors import DataError, UsageError
from mrgen.fft import fft2c, ifft2c

from .conftest import invoke

HAS_ITK = sources.ITK_DATA.is_dir()
HAS_NILEARN = importlib.util.find_spec("nilearn") is not None
HAS_DICOM = all(importlib.util.find_spec(m) is not None for m in ("pydicom", "PIL"))
requires_itk = pytest.mark.skipif(not HAS_ITK, reason="needs insighttoolkit5-examples")
requires_nilearn = pytest.mark.skipif(not HAS_NILEARN, reason="needs nilearn")


def _available(name):
    try:
        sources.SOURCES[name]().check()
    except DataError:
        return False
    return True


AVAILABLE = [name for name in sources.SOURCES if _available(name)]
FAST_TRAIN = [n for n in ("dicom", "itk-other") if n in AVAILABLE]


def _arrays(path):
    with h5py.File(path, "r") as handle:
        return {name: handle[name][()] for name in handle}, dict(handle.attrs)


def _manifest(path):
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def mni():
    if "mni152" not in AVAILABLE:
        pytest.skip("needs nilearn and nibabel")
    source = sources.Mni152()
    source.volumes()
    return source


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Every available split at 32 x 32, 3 coils, no noise, a few slices each."""
    names = ",".join(AVAILABLE)
    if not names:
        pytest.skip("no corpus source installed")
    folder = tmp_path_factory.mktemp("corpus")
    result = invoke("dataset", folder, "--size", "32", "32", "--coils", "3", "--snr", "inf",
                    "--augment", "1", "--max-slices", "6", "--sources", names)
    assert result.exit_code == 0, result.stderr
    return folder


# ---------------------------------------------------------------------------------------------
# MetaImage


@pytest.mark.parametrize("compressed", [False, True])
@pytest.mark.parametrize("data_file", [None, "data.raw"])
def test_metaimage_round_trip(tmp_path, compressed, data_file):
    rng = np.random.default_rng(0)
    for array, channels in ((rng.integers(0, 255, (3, 5, 4), dtype=np.uint8), False),
                            (rng.standard_normal((6, 7, 2)).astype(np.float32), True),
                            (rng.integers(-999, 999, (4, 9), dtype=np.int16), False)):
        path = write_metaimage(tmp_path / "x.mha", array, channels, compressed, data_file)
        back, header = read_metaimage(path)
        assert back.dtype == array.dtype and np.array_equal(back, array)
        assert header["CompressedData"] == str(compressed)
        if channels:
            assert header["ElementNumberOfChannels"] == "2"


def test_metaimage_big_endian_and_errors(tmp_path):
    values = np.arange(6, dtype=">i2").reshape(2, 3)
    (tmp_path / "b.raw").write_bytes(values.tobytes())
    (tmp_path / "b.mhd").write_text("NDims = 2\nDimSize = 3 2\nElementType = MET_SHORT\n"
                                    "ElementByteOrderMSB = True\nElementDataFile = b.raw\n")
    array, _ = read_metaimage(tmp_path / "b.mhd")
    assert array.tolist() == [[0, 1, 2], [3, 4, 5]]
    (tmp_path / "c.mhd").write_text("NDims = 2\nDimSize = 30 2\nElementType = MET_SHORT\n"
                                    "ElementDataFile = b.raw\n")
    with pytest.raises(DataError, match="bytes of data"):
        read_metaimage(tmp_path / "c.mhd")
    (tmp_path / "d.mhd").write_text("NDims = 2\nDimSize = 3 2\nElementType = MET_SHORT\n")
    with pytest.raises(DataError, match="ElementDataFile"):
        read_metaimage(tmp_path / "d.mhd")


@requires_itk
def test_metaimage_reads_the_itk_files(tmp_path):
    stack, header = read_metaimage(sources.ITK_DATA / "BrainProtonDensity3Slices.mha")
    assert stack.shape == (3, 217, 181) and stack.dtype == np.uint8
    complex_slice, _ = read_metaimage(sources.ITK_DATA / "itkBrainSliceComplex.mha")
    assert complex_slice.shape == (217, 181, 2) and complex_slice.dtype == np.float32
    # ITK's zlib-compressed copy of a slice reads as its raw twin
    raw, header = read_metaimage(sources.ITK_DATA / "BrainProtonDensitySliceBorder20.mhd")
    text = (sources.ITK_DATA / "BrainProtonDensitySliceBorder20.mhd").read_text()
    zraw = sources.ITK_DATA / "BrainProtonDensitySliceBorder20.zraw"
    text = text.replace("CompressedData = False", "CompressedData = True").replace(
        "BrainProtonDensitySliceBorder20.raw", str(zraw))
    (tmp_path / "z.mhd").write_text(text)
    compressed, _ = read_metaimage(tmp_path / "z.mhd")
    assert raw.shape == (257, 221) and np.array_equal(compressed, raw)


# ---------------------------------------------------------------------------------------------
# Contrasts


def test_signal_equations():
    assert contrasts.spin_echo(0.8, 1000.0, 100.0, 2000.0, 50.0) == pytest.approx(
        0.8 * (1 - np.exp(-2.0)) * np.exp(-0.5))
    assert contrasts.inversion_recovery(1.0, 1000.0, 100.0, 3000.0, 0.0, 500.0) == \
        pytest.approx(abs(1 - 2 * np.exp(-0.5) + np.exp(-3.0)))
    ti = contrasts.null_time(4300.0, 9000.0)
    assert contrasts.inversion_recovery(1.0, 4300.0, 2200.0, 9000.0, 100.0, ti) < 1e-12
    params = contrasts.nominal_parameters("T2w")
    mixed = contrasts.synthesize({"gm": np.array([0.25]), "wm": np.array([0.75])}, params)
    expected = 0.25 * contrasts.tissue_signal("gm", params) + \
        0.75 * contrasts.tissue_signal("wm", params)
    assert mixed[0] == pytest.approx(expected)


@pytest.mark.parametrize("seed", range(20))
def test_contrasts_order_the_tissues(seed):
    rng = np.random.default_rng(seed)
    signal = {}
    for name in contrasts.SYNTHETIC:
        params = contrasts.draw_parameters(name, rng)
        signal[name] = {t: contrasts.tissue_signal(t, params) for t in contrasts.TISSUES}
    assert signal["T2w"]["csf"] > signal["T2w"]["gm"] > signal["T2w"]["wm"]
    assert signal["T1w"]["wm"] > signal["T1w"]["gm"] > signal["T1w"]["csf"]
    assert signal["FLAIR"]["gm"] > signal["FLAIR"]["wm"] > 100 * signal["FLAIR"]["csf"]
    assert signal["PD"]["gm"] > signal["PD"]["wm"]


def test_crisp_fractions_keep_the_likeliest_tissue_and_sharpen():
    x = np.linspace(-3, 3, 61)
    gm = 1 / (1 + np.exp(-x))                     # a blurred GM/WM boundary, no background
    fractions = {"gm": gm, "wm": 1 - gm, "csf": np.zeros_like(x)}
    assert contrasts.crisp_fractions(fractions, 1.0) is fractions
    crisp = contrasts.crisp_fractions(fractions, 0.1)
    total = crisp["gm"] + crisp["wm"] + crisp["csf"]
    assert np.allclose(total, 1.0)
    assert np.array_equal(crisp["gm"] > 0.5, gm > 0.5)          # same likeliest tissue
    width = lambda p: int(((p > 0.05) & (p < 0.95)).sum())      # the transition's samples
    assert width(crisp["gm"]) < width(gm) / 5
    assert 0.1 <= contrasts.draw_temperature(np.random.default_rng(0)) <= 1.0


def test_synthesised_mni_slices_show_the_contrasts(mni):
    vols = mni.volumes()
    index = 95                                    # axial, through the lateral ventricles
    plane = {t: mni.plane(vols[t], "axial", index) for t in ("gm", "wm", "csf")}
    csf, wm, gm = plane["csf"] > 0.9, plane["wm"] > 0.9, plane["gm"] > 0.7
    assert csf.sum() > 50 and wm.sum() > 500 and gm.sum() > 500
    rng = np.random.default_rng(0)
    images = {c: mni.load(sources.Entry("mni152", mni.subject, c, "axial", index, "", ""),
                          rng)[0] for c in ("T1w", "T2w", "FLAIR")}
    assert images["T2w"][csf].mean() > 2 * images["T2w"][wm].mean()
    assert images["T1w"][wm].mean() > 1.1 * images["T1w"][gm].mean()
    assert images["FLAIR"][csf].mean() < 0.2 * images["FLAIR"][gm].mean()


# ---------------------------------------------------------------------------------------------
# Splits


def test_split_hygiene(mni):
    subjects = {}
    for name in AVAILABLE:
        source = sources.SOURCES[name]() if name != "mni152" else mni
        for path in source.files():
            text = str(path.resolve()).lower()
            assert not text.startswith("/usr/share/mricron") and "colin" not in text, path
            assert "BrainMidSagittalSlice" not in str(path)    # BrainWeb: the test subject
        for entry in source.entries():
            assert entry.source == name
            assert "colin" not in entry.path.lower() and "/mricron" not in entry.path
            subjects.setdefault((entry.source, entry.subject), set()).add(source.split)
    assert all(len(splits) == 1 for splits in subjects.values()), subjects
    by_subject = {}
    for (_, subject), splits in subjects.items():
        by_subject.setdefault(subject, set()).update(splits)
    assert all(len(splits) == 1 for splits in by_subject.values()), by_subject
    assert set(sources.split_sources("test")) == {"itk-brainweb"}
    assert set(sources.split_sources("validation")) == {"itk-kmeans"}
    assert not set(sources.split_sources("train")) & {"itk-brainweb", "itk-kmeans"}


def test_the_tiny_corpus_keeps_its_splits(tiny):
    seen = {}
    for split in sources.SPLITS:
        path = tiny / f"{split}-manifest.json"
        if not path.exists():
            continue
        manifest = _manifest(path)
        assert manifest["split"] == split
        for entry in manifest["entries"]:
            assert entry["split"] == split
            assert sources.SOURCES[entry["source"]].split == split
            seen.setdefault((entry["source"], entry["subject"]), set()).add(split)
            if split != "train":
                assert entry["augmentation"] is None and entry["copy"] == 0
    assert seen and all(len(s) == 1 for s in seen.values())


# ---------------------------------------------------------------------------------------------
# The fastMRI layout


def test_layout_and_the_model(tiny):
    files = sorted(tiny.glob("*.h5"))
    assert files
    for path in files:
        arrays, attrs = _arrays(path)
        kspace, image, maps, rss = (arrays[n] for n in ("kspace", "image", "maps",
                                                        "reconstruction_rss"))
        s = kspace.shape[0]
        assert kspace.shape == (s, 3, 32, 32) and kspace.dtype == np.complex64
        assert maps.shape == kspace.shape and maps.dtype == np.complex64
        assert image.shape == (s, 32, 32) and image.dtype == np.complex64
        assert rss.shape == (s, 32, 32) and rss.dtype == np.float32
        coil_images = ifft2c(torch.from_numpy(kspace)).numpy()
        assert np.allclose(np.sqrt(np.sum(np.abs(coil_images) ** 2, axis=1)), rss, atol=1e-6)
        assert np.allclose(coil_images, maps * image[:, None], atol=2e-6)       # no noise
        assert np.allclose(np.sum(np.abs(maps) ** 2, axis=1), 1.0, atol=1e-5)
        assert np.allclose(np.abs(image).max(axis=(1, 2)), 1.0, atol=1e-6)
        assert attrs["max"] == pytest.approx(float(rss.max()))
        assert attrs["norm"] == pytest.approx(float(np.linalg.norm(rss)), rel=1e-6)
        manifest = _manifest(path.with_name(f"{path.stem}-manifest.json"))
        assert [e["index"] for e in manifest["entries"]] == list(range(s))
        assert all(e["coils"] == 3 and e["noise_sigma"] == 0 for e in manifest["entries"])


@pytest.mark.skipif(not FAST_TRAIN, reason="needs pydicom or the ITK examples")
def test_noise_at_the_snr(tmp_path):
    assert invoke("dataset", tmp_path, "--split", "train", "--sources", ",".join(FAST_TRAIN),
                  "--size", "64", "64", "--coils", "2", "--snr", "20", "--augment", "0",
                  "--max-slices", "3").exit_code == 0
    arrays, attrs = _arrays(tmp_path / "train.h5")
    entries = _manifest(tmp_path / "train-manifest.json")["entries"]
    clean = fft2c(torch.from_numpy(arrays["maps"] * arrays["image"][:, None])).numpy()
    for s, entry in enumerate(entries):
        sigma = entry["noise_sigma"]
        magnitude = np.abs(arrays["image"][s])
        signal = magnitude[magnitude >= 0.05].mean()
        assert sigma == pytest.approx(signal / 10.0, rel=1e-6)               # 20 dB
        measured = np.sqrt(np.mean(np.abs(arrays["kspace"][s] - clean[s]) ** 2))
        assert measured == pytest.approx(sigma, rel=0.1)
    assert attrs["snr_db"] == 20.0


# ---------------------------------------------------------------------------------------------
# Determinism


@pytest.mark.skipif(not FAST_TRAIN, reason="needs pydicom or the ITK examples")
def test_same_seed_same_files_other_seed_other_files(tmp_path):
    def build(folder, seed):
        result = invoke("dataset", tmp_path / folder, "--split", "train", "--sources",
                        ",".join(FAST_TRAIN), "--size", "32", "40", "--coils", "2:5",
                        "--augment", "2", "--max-slices", "6", "--seed", seed)
        assert result.exit_code == 0, result.stderr
        return _arrays(tmp_path / folder / "train.h5")[0], \
            _manifest(tmp_path / folder / "train-manifest.json")

    first, manifest = build("a", 3)
    again, manifest_again = build("b", 3)
    other, _ = build("c", 4)
    for name in first:
        assert np.array_equal(first[name], again[name]), name
    assert manifest["entries"] == manifest_again["entries"]
    assert not np.array_equal(first["kspace"], other["kspace"])
    assert 2 <= first["kspace"].shape[1] <= 5 and manifest["coils"] == first["kspace"].shape[1]
    assert any(e["augmentation"] for e in manifest["entries"])


def test_mni_slices_are_deterministic(mni):
    entry = mni.entries()[40]
    options = CorpusOptions(size=(48, 48), coils=(4, 4), seed=7)
    first, record = make_slice(mni, Item(entry, 1), options, 4)
    second, record_again = make_slice(mni, Item(entry, 1), options, 4)
    other, _ = make_slice(mni, Item(entry, 1), CorpusOptions(size=(48, 48), seed=8), 4)
    assert all(np.array_equal(first[k], second[k]) for k in first) and record == record_again
    assert not np.array_equal(first["kspace"], other["kspace"])
    if entry.contrast != contrasts.TEMPLATE:
        assert set(record["sequence"]) >= {"TR", "TE"}


# ---------------------------------------------------------------------------------------------
# Augmentation and coils


def _disc(size=(40, 48)):
    y, x = np.mgrid[:size[0], :size[1]]
    return ((y - 18.0) ** 2 + (x - 20.0) ** 2 < 150).astype(float) * (1 + x / 50.0)


def test_augmentation_keeps_max_one_and_changes_the_image():
    image = place(_disc(), (40, 48))
    for seed in range(10):
        params = augment.draw(np.random.default_rng(seed), image.shape)
        out = augment.apply(image, params)
        assert out.shape == image.shape
        assert np.abs(out).max() == pytest.approx(1.0)
        assert np.linalg.norm(out - image) > 0.05 * np.linalg.norm(image)
        assert np.array_equal(out, augment.apply(image, params))      # parameters suffice
        assert params["turns"] in (0, 2)                               # a non-square grid
        assert -10 <= params["rotation_deg"] <= 10 and 0.9 <= params["scale"] <= 1.1
        assert 0.7 <= params["gamma"] <= 1.4 and 0 <= params["bias"] <= 0.2
    complex_image = image * np.exp(1j * 0.3)
    out = augment.apply(complex_image, augment.draw(np.random.default_rng(0), image.shape))
    assert np.iscomplexobj(out) and np.abs(out).max() == pytest.approx(1.0)


def test_random_coil_maps():
    rng = np.random.default_rng(5)
    maps, geometry = random_coil_maps(6, (30, 40), rng)
    assert maps.shape == (6, 30, 40)
    assert np.allclose(np.sum(np.abs(maps) ** 2, axis=0), 1.0)
    assert len(geometry["angles"]) == 6
    assert np.abs(maps).std(axis=(1, 2)).min() > 0.01                    # not flat
    ones, nothing = random_coil_maps(1, (30, 40), rng)
    assert np.array_equal(ones, np.ones((1, 30, 40))) and nothing == {}


# ---------------------------------------------------------------------------------------------
# Missing packages and bad options


def test_a_missing_itk_package_names_it(tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "ITK_DATA", tmp_path / "nowhere")
    with pytest.raises(DataError, match="apt-get install insighttoolkit5-examples"):
        plan_corpus(tmp_path, "test", CorpusOptions())
    result = invoke("dataset", tmp_path / "out", "--split", "validation")
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        f"mrgen dataset: source itk-kmeans needs the ITK example data "
        f"({tmp_path / 'nowhere' / 'KmeansTest_T1UCharRaw.nii.gz'} is missing): "
        f"apt-get install insighttoolkit5-examples"]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("module, source", [("pydicom", "dicom"), ("nilearn", "mni152"),
                                            ("nibabel", "itk-kmeans")])
def test_a_missing_python_package_names_it(tmp_path, monkeypatch, module, source):
    monkeypatch.setitem(sys.modules, module, None)          # import fails
    monkeypatch.setitem(sys.modules, f"{module}.datasets", None)
    with pytest.raises(DataError, match=rf"{module}: pip install 'mrgen\[corpus\]'"):
        plan_corpus(tmp_path, sources.SOURCES[source].split,
                    CorpusOptions(sources=(source,)))


def test_outputs_never_overwrite_inputs(tmp_path, monkeypatch):
    monkeypatch.setattr(sources.ItkBrainweb, "check", lambda self: None)
    monkeypatch.setattr(sources.ItkBrainweb, "files", lambda self: [tmp_path / "test.h5"])
    (tmp_path / "test.h5").write_bytes(b"an input")
    with pytest.raises(UsageError, match="test.h5: output would overwrite an input"):
        plan_corpus(tmp_path, "test", CorpusOptions())
    assert (tmp_path / "test.h5").read_bytes() == b"an input"


@pytest.mark.parametrize("args, word", [
    (("--coils", "0"), "--coils 0"), (("--coils", "5:2"), "--coils 5:2"),
    (("--snr", "nan"), "--snr"), (("--split", "tests"), "--split tests"),
    (("--sources", "colin27"), "unknown source colin27"),
    (("--split", "test", "--sources", "mni152"), "--sources mni152"),
    (("--size", "1", "8"), "--size 1 8"), (("--augment", "-1"), "--augment -1"),
    (("--max-slices", "0"), "--max-slices 0")])
def test_bad_options(tmp_path, args, word):
    result = invoke("dataset", tmp_path / "out", *args)
    assert result.exit_code == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and word in lines[0], lines
    assert not (tmp_path / "out").exists()


def test_sources_parse_and_coil_ranges():
    from mrgen.corpus import parse_coils, parse_snr, parse_sources

    assert parse_coils("8") == (8, 8) and parse_coils("4:12") == (4, 12)
    assert parse_snr("inf") is None and parse_snr("25") == 25.0
    assert parse_sources("dicom, mni152,dicom") == ("dicom", "mni152")
    with pytest.raises(UsageError):
        parse_coils("a:b")


def test_every_slice_of_a_split_has_its_own_seed_key(mni):
    # the key seeds a slice's phase, maps and noise: two slices sharing one would share them
    # (BrainWeb's PD slice and the first slice of its PD volume once did)
    for name in AVAILABLE:
        source = sources.SOURCES[name]() if name != "mni152" else mni
        keys = [entry.key() for entry in source.entries()]
        assert len(keys) == len(set(keys)), name
