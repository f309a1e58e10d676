"""Application layer: one function per method, from inputs and options to results;
commands/ only parse, load, call this and save.

Each reconstruction app takes an ``mrgen.acquisition.Acquisition`` (k-space, mask, maps with a
slice axis) and an options dataclass, and returns a result dataclass of tensors with the slice
axis kept (the command drops it with ``acq.squeeze``). Apps report through a ``log`` callable
and advance progress through a ``progress(n)`` callable; they never print, parse or write files.
Algorithms (``mrgen.cg``, ``mrgen.mcmc``, ``mrgen.ipalm``, ...) stay apart from the apps that wire
them, as sigpy's ``alg.py`` and ``mri/app.py``.
"""
