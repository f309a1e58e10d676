"""HDF5 files in the fastMRI layout: named datasets plus file attributes."""

from __future__ import annotations

import numpy as np

from ..errors import DataError
from .atomic import atomic_path
from .refs import slice_text


def _open(ref):
    import h5py

    if not ref.path.exists():
        raise DataError(f"{ref.path}: no such file")
    try:
        return h5py.File(ref.path, "r")
    except OSError as err:
        raise DataError(f"{ref.path}: not a readable HDF5 file (truncated or another format?)"
                        f" [{err.__class__.__name__}]") from None


def dataset_names(handle) -> list[str]:
    import h5py

    names = []
    handle.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset)
                      else None)
    return names


def choose_dataset(ref, handle, defaults) -> str:
    """The dataset to read: the one named, else the first default present. A file without one
    of the defaults is an error that lists its datasets (never a silent read of another)."""
    names = dataset_names(handle)
    if ref.dataset is not None:
        if ref.dataset not in names:
            raise DataError(f"{ref.path}: no dataset '{ref.dataset}'; it has: "
                            f"{', '.join(names) or 'none'}")
        return ref.dataset
    for name in defaults:
        if name in names:
            return name
    wanted = " or ".join(f"'{n}'" for n in defaults)
    raise DataError(f"{ref.path}: no dataset {wanted}; name one as {ref.path}:NAME "
                    f"(it has: {', '.join(names) or 'none'})")


def read_h5(ref, defaults, index=None, sliced_rank=1) -> tuple[np.ndarray, dict]:
    """Read a dataset; ``index`` selects along its first (slice) axis, which a dataset of
    rank below ``sliced_rank`` does not have."""
    with _open(ref) as handle:
        name = choose_dataset(ref, handle, defaults)
        dataset = handle[name]
        if index is not None and dataset.ndim < sliced_rank:
            raise DataError(f"{ref.path}:{name}: --slice given but it has no slice axis "
                            f"(shape {dataset.shape})")
        if isinstance(index, int) and not -dataset.shape[0] <= index < dataset.shape[0]:
            raise DataError(f"{ref.path}:{name}: --slice {index} out of range for "
                            f"{dataset.shape[0]} slices")
        try:
            # h5py reads only the selected slices: whole fastMRI volumes need not fit in memory.
            array = dataset[index] if index is not None else dataset[()]
        except (OSError, ValueError, IndexError) as err:
            raise DataError(f"{ref.path}:{name}: cannot read ({err})") from None
        if isinstance(index, slice) and np.shape(array)[0] == 0:
            raise DataError(f"{ref.path}:{name}: --slice {slice_text(index)} selects none of "
                            f"its {dataset.shape[0]} slices")
        attrs = {k: v for k, v in dataset.attrs.items()}
    return np.asarray(array), attrs


def write_h5(path, datasets: dict, attrs: dict) -> None:
    """Write a whole new file (never a partial update of an existing one)."""
    import h5py

    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as handle:
            for name, array in datasets.items():
                handle.create_dataset(name, data=array)
            for key, value in attrs.items():
                handle.attrs[key] = value


def h5_shape(ref, defaults) -> tuple[int, ...]:
    with _open(ref) as handle:
        return tuple(handle[choose_dataset(ref, handle, defaults)].shape)
