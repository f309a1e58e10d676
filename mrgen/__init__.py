"""mrgen: accelerated MRI reconstruction on PyTorch tensors.

The library holds all numerics; the command-line interface in ``commands/`` is a thin shell
over it. Importing ``mrgen`` is cheap: torch, h5py and sigpy are imported by the submodules
that need them, so ``mrgen --help`` stays fast.
"""

__version__ = "0.1.0"
