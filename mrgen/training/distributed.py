"""One process or many: the distributed context of a training run.

Under ``torchrun`` (environment variables RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR,
MASTER_PORT) ``init_distributed`` joins the process group, with the NCCL backend on CUDA (one
GPU per process: cuda:LOCAL_RANK) and gloo on CPU. Without them it returns a single-process
context and nothing else changes. Everything a method needs to know about the other processes
goes through the context: its rank (its share of the data, its own random streams), ``wrap`` (the
model in DistributedDataParallel), ``mean`` (all-reduced metrics), ``gather`` (per-rank state
for the checkpoint), ``barrier``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import torch


@dataclass
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    backend: str | None = None          # None: a single process
    owns_group: bool = False            # we initialised the group, so we destroy it

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes checkpoints, outputs and progress."""
        return self.rank == 0

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """The model in DistributedDataParallel (gradients averaged over the processes), or
        the model itself in a single process. DDP broadcasts rank 0's parameters on wrapping."""
        if not self.distributed:
            return model
        from torch.nn.parallel import DistributedDataParallel

        if self.device.type == "cuda":
            return DistributedDataParallel(model, device_ids=[self.device.index],
                                           output_device=self.device.index)
        return DistributedDataParallel(model)

    def mean(self, values: dict[str, float]) -> dict[str, float]:
        """Average scalar metrics over the processes (every rank must pass the same keys)."""
        if not self.distributed or not values:
            return dict(values)
        import torch.distributed as dist

        keys = sorted(values)
        tensor = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64,
                              device=self._collective_device())
        dist.all_reduce(tensor)
        reduced = {k: float(v) / self.world_size for k, v in zip(keys, tensor.tolist())}
        return {k: reduced[k] for k in values}  # the method's order, for display

    def any(self, flag: bool) -> bool:
        """True on every rank when ``flag`` is true on any rank."""
        if not self.distributed:
            return bool(flag)
        import torch.distributed as dist

        tensor = torch.tensor([1.0 if flag else 0.0], device=self._collective_device())
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
        return bool(tensor.item() > 0)

    def gather(self, obj):
        """Rank 0 gets the list of every rank's ``obj`` (picklable, CPU tensors); others None."""
        if not self.distributed:
            return [obj]
        import torch.distributed as dist

        out = [None] * self.world_size if self.is_main else None
        dist.gather_object(obj, out, dst=0)
        return out

    def barrier(self) -> None:
        if self.distributed:
            import torch.distributed as dist

            if self.backend == "nccl":
                dist.barrier(device_ids=[self.device.index])
            else:
                dist.barrier()

    def close(self) -> None:
        """Barrier, then leave the process group if ``init_distributed`` created it."""
        if not self.distributed:
            return
        import torch.distributed as dist

        if dist.is_initialized():
            self.barrier()
            if self.owns_group:
                dist.destroy_process_group()

    def _collective_device(self):
        return self.device if self.backend == "nccl" else torch.device("cpu")


def launched_distributed() -> bool:
    """True under torchrun (or any launcher that sets RANK and WORLD_SIZE > 1)."""
    return "RANK" in os.environ and int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_distributed(device: torch.device) -> DistContext:
    """The context of this process; joins the process group under torchrun.

    ``device`` is the device asked for (cli.device()); on CUDA each process takes the GPU of
    its LOCAL_RANK. A process group that already exists (a test that set it up) is reused.
    """
    device = torch.device(device)
    if not launched_distributed():
        return DistContext(device=device)
    import torch.distributed as dist

    rank = int(os.environ["RANK"])
    world = int(os.environ["WORLD_SIZE"])
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        backend = "gloo"
    owns = False
    if not dist.is_initialized():
        dist.init_process_group(backend, rank=rank, world_size=world)
        owns = True
    else:
        backend = dist.get_backend()
    return DistContext(rank, world, local, device, backend, owns)


# ---------------------------------------------------------------------------------------------
# Random streams


STEP_STREAM = 0
INIT_STREAM = 1


def derive_seed(*keys: int) -> int:
    """A 63-bit seed from integer keys (numpy SeedSequence: well mixed, platform independent)."""
    words = [int(k) & (2**64 - 1) for k in keys]
    return int(np.random.SeedSequence(words).generate_state(1, np.uint64)[0] >> np.uint64(1))


def make_generator(device, *keys: int) -> torch.Generator:
    """A torch generator on ``device`` seeded by ``derive_seed(*keys)``."""
    gen = torch.Generator(device=torch.device(device))
    gen.manual_seed(derive_seed(*keys))
    return gen


def step_generator(seed: int, rank: int, step: int, device) -> torch.Generator:
    """The generator of training step ``step`` (0-based) on ``rank``: it depends on nothing but
    (seed, rank, step), so a resumed run draws exactly what an uninterrupted one would."""
    return make_generator(device, seed, STEP_STREAM, rank, step)


def init_generator(seed: int, rank: int, device, purpose: int = 0) -> torch.Generator:
    """A generator for initialisation (weights: rank 0's; buffers: each rank's own)."""
    return make_generator(device, seed, INIT_STREAM, purpose, rank)


EPOCH_STREAM = 2


def epoch_indices(step: int, batch: int, count: int, seed: int,
                  context: "DistContext | None" = None) -> list[int]:
    """The items of training step ``step`` for this rank when a method walks through ``count``
    items in epochs (e.g. k-space files for a supervised method): every epoch is a fresh
    permutation seeded by (seed, epoch), shared by all ranks, and consecutive steps and ranks
    take consecutive runs of ``batch`` items from it (rank r of W at step h takes positions
    (h W + r) batch ... + batch - 1). It depends only on its arguments, so a resumed run sees
    the same items; an epoch is ``count / (batch W)`` steps."""
    rank, world = (context.rank, context.world_size) if context is not None else (0, 1)
    if count < 1 or batch < 1:
        raise ValueError("epoch_indices needs count >= 1 and batch >= 1")
    out = []
    start = (step * world + rank) * batch
    for position in range(start, start + batch):
        epoch, offset = divmod(position, count)
        order = torch.randperm(count, generator=make_generator("cpu", seed, EPOCH_STREAM, epoch))
        out.append(int(order[offset]))
    return out


def average_gradients(model: torch.nn.Module, context: DistContext) -> None:
    """All-reduce and average the parameters' gradients over the processes: for losses that
    differentiate an input gradient (score matching), whose double backward pass DDP's hooks
    do not see."""
    if not context.distributed:
        return
    import torch.distributed as dist

    for p in model.parameters():
        if p.grad is not None:
            dist.all_reduce(p.grad)
            p.grad /= context.world_size
