"""A training corpus with real variety from MR data that ship in installed packages.

``mrgen dataset`` builds, per split, a fastMRI-layout .h5 file of simulated acquisitions
(kspace, maps, image, reconstruction_rss) and a JSON manifest of where every slice came from
and what was drawn for it. The modules:

- ``sources``: the images and their split (train: MNI152 contrasts, pydicom's MR files, ITK's
  non-BrainWeb MR slices; validation: ITK's k-means T1 head; test: ITK's BrainWeb slices);
- ``contrasts``: T1w/T2w/PD/FLAIR from tissue maps (literature values, signal equations);
- ``metaimage``: the ITK MetaImage (.mha/.mhd) reader;
- ``augment``: geometry, intensity curve and bias field of the training copies;
- ``maps``: coil sensitivities of random geometry;
- ``build``: planning a split and writing it one slice at a time.

Needs the extra ``pip install 'mrgen[corpus]'`` (pydicom, pydicom-data, nilearn, nibabel,
pillow) and the Debian package insighttoolkit5-examples for the ITK sources.
"""

from .build import (CorpusOptions, SplitPlan, SplitSummary, make_slice, parse_coils,
                    parse_snr, parse_sources, plan_corpus, write_split)
from .sources import SOURCES, SPLITS, split_sources

__all__ = ["CorpusOptions", "SplitPlan", "SplitSummary", "make_slice", "parse_coils",
           "parse_snr", "parse_sources", "plan_corpus", "write_split", "SOURCES", "SPLITS",
           "split_sources"]
