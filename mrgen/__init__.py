"""mrgen: accelerated MRI reconstruction on PyTorch tensors.

The library holds all numerics; the command-line interface in ``commands/`` is a thin shell
over it. Importing ``mrgen`` is cheap: torch and h5py are imported by the submodules that need
them, and sigpy (seconds to import) only inside the one function that calls it, the
``sigpy-poisson`` mask kind of ``mrgen.masks``, so ``mrgen --help`` stays fast. Where mrgen has
its own code for something sigpy offers (Poisson-disc masks, the Shepp-Logan phantom and
birdcage maps, ESPIRiT, CG-SENSE), the module says why, with the measured reason.
"""

__version__ = "0.1.0"
