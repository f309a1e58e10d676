"""Supervised end-to-end training of Deep J-Sense or MoDL (Arvinte et al. 2021) on fully
sampled multi-coil k-space files (``mrgen train djsense``)."""

from __future__ import annotations

from dataclasses import replace


def train_djsense_app(data: list[str], architecture, config, central_slices: int, run, device):
    """Train a ``DJSenseConfig`` network with a ``TrainConfig`` on the ``central_slices``
    middle slices (0: all) of the files ``data`` and write ``run.output``
    (``apps.train_run.TrainingRun``); returns the engine's TrainResult. MoDL (mode modl) has
    no map sub-problem: its map CG steps are set to 0."""
    from ..djsense.training import check_train_config, load_examples, train_djsense
    from ..errors import UsageError
    from .train_run import distributed

    if architecture.mode == "l2":
        raise UsageError("--mode l2: plain J-Sense has nothing to train; use mrgen djsense "
                         "--mode l2")
    run.check_counts(central_slices)
    run.check_checkpoint()
    if architecture.mode == "modl":
        architecture = replace(architecture, map_cg=0)
    architecture.check()
    check_train_config(config)
    with distributed(device) as context:
        examples = load_examples(data, central_slices)
        log = run.main_log(context.is_main)
        log(f"{len(examples.kspace)} training slices from {len(data)} file(s); masks "
            f"{config.mask}")
        result, _ = train_djsense(examples, architecture, config, run.output,
                                  run.engine_options("train djsense", context.is_main),
                                  context, command=run.command)
        loss = result.metrics.get("loss")
        text = f", loss {loss:.4g}" if loss is not None else ""
        skipped = f", {result.nan_skipped} updates undone" if result.nan_skipped else ""
        log(f"wrote {run.output} (step {result.step}{text}{skipped}); checkpoint "
            f"{run.checkpoint}")
        return result
