"""Maximum-likelihood training of DEEPEN's posterior energy (Chand, Jacob 2025) on fully
sampled k-space files (``mrgen train deepen``)."""

from __future__ import annotations


def train_deepen_app(data: list[str], architecture, config, central_slices: int, run, device):
    """Train a ``DeepenConfig`` network with a ``DeepenTrainConfig`` on the ``central_slices``
    middle slices (0: all) of the files ``data`` and write ``run.output``
    (``apps.train_run.TrainingRun``); returns the engine's TrainResult."""
    from ..deepen.training import check_train_config, load_examples, train_deepen
    from .train_run import distributed

    run.check_checkpoint()
    run.check_counts(central_slices)
    architecture.validate()
    with distributed(device) as context:
        check_train_config(config, context.world_size)
        examples = load_examples(data, central_slices)
        log = run.main_log(context.is_main)
        desc = examples.description
        log(f"{desc['slices']} training slices from {len(desc['files'])} file(s), "
            f"{'x'.join(map(str, desc['shape']))} (coils x H x W), masks {config.mask}")
        result, _ = train_deepen(examples, architecture, config, run.output,
                                 run.engine_options("train deepen", context.is_main), context,
                                 command=run.command, samples_png=run.samples_png,
                                 png_every=run.png_every)
        gap = f", energy gap {result.metrics['loss']:.4g}" if "loss" in result.metrics else ""
        log(f"wrote {run.output} (step {result.step}{gap}); checkpoint {run.checkpoint}")
        return result
