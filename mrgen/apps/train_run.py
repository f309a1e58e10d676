"""What every training app shares: the run's files, length, checkpoints and reports."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable


@dataclass
class TrainingRun:
    """How one training run goes, whatever the method. ``log`` receives the report lines (of
    rank 0 only); ``progress`` shows a bar; ``command`` is recorded in the model file."""
    output: Path
    checkpoint: Path
    steps: int | None = None          # None: the method's default (the prior's preset)
    checkpoint_every: int = 50
    resume: bool = False
    nan_guard: bool = False
    seed: int = 0
    progress: bool = False
    log: Callable[[str], None] | None = None
    command: str | None = None
    samples_png: str | None = None
    png_every: int = 50

    def check_checkpoint(self) -> None:
        """Refuse to resume nothing or to overwrite an earlier run, before any data is loaded
        (the engine checks again)."""
        from ..errors import UsageError

        if self.resume and not self.checkpoint.exists():
            raise UsageError(f"--resume: {self.checkpoint} does not exist (nothing to resume)")
        if not self.resume and self.checkpoint.exists():
            raise UsageError(f"{self.checkpoint}: a checkpoint of an earlier run exists; "
                             f"continue it with --resume or remove it")

    def check_counts(self, central_slices: int) -> None:
        from ..errors import UsageError

        for name, value in (("--steps", self.steps), ("--checkpoint-every",
                                                      self.checkpoint_every),
                            ("--png-every", self.png_every), ("--central-slices",
                                                              central_slices)):
            if value is not None and value < 0:
                raise UsageError(f"{name} {value}: must be at least 0")
        if self.samples_png is not None and self.png_every < 1:
            raise UsageError(f"--png-every {self.png_every}: must be at least 1 with "
                             f"--samples-png")

    def engine_options(self, description: str, is_main: bool):
        """The engine's options; log lines on rank 0 only."""
        from ..training.engine import EngineOptions

        return EngineOptions(
            steps=self.steps, seed=self.seed, checkpoint=self.checkpoint,
            checkpoint_every=self.checkpoint_every, resume=self.resume,
            progress=self.progress, nan_guard=self.nan_guard,
            log=self.log if is_main else None, log_every=self.checkpoint_every or 100,
            description=description)

    def main_log(self, is_main: bool) -> Callable[[str], None]:
        """``log`` on rank 0, silence elsewhere."""
        return self.log if (is_main and self.log is not None) else (lambda message: None)


@contextmanager
def distributed(device):
    """The process's distributed context (joined under torchrun), closed at the end."""
    from ..training.distributed import init_distributed

    context = init_distributed(device)
    try:
        yield context
    finally:
        context.close()
