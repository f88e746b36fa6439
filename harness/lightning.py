"""failbench for PyTorch Lightning: the recorder and its warning as one callback, no change to the loop.

    from failbench.lightning import Watch
    trainer = Trainer(callbacks=[Watch(warn=True, path="trace.parquet")])

It watches the LightningModule (its `training_step` calls `self(x)`, as Lightning's examples do;
`module="net"` watches the submodule `self.net` it calls instead) and its first optimizer, logs the
training loss every `every` optimizer steps (and `val_accuracy` where the module logs a metric of
that name), and at the end saves the trace to `path`, or, with no path and an active MLflow run, to
that run (`failbench diagnose mlflow:RUN_ID`). Needs `pytorch-lightning` (the wheel's `lightning`
extra).
"""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl

from failbench.watching import watch


class Watch(pl.Callback):
    def __init__(self, warn: bool = True, path: str | Path | None = None, every: int = 10, module: str | None = None):
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        self.warn, self.path, self.every, self.module = warn, path, every, module
        self.recorder = None

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        model = getattr(pl_module, self.module) if self.module else pl_module
        optimizer = trainer.optimizers[0] if trainer.optimizers else None
        self.recorder = watch(model, optimizer, warn=self.warn)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step - 1  # the optimizer step just taken (global_step counts them)
        if self.recorder is None or step < 0 or step % self.every:
            return
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        accuracy = trainer.callback_metrics.get("val_accuracy")
        self.recorder.log(step, loss=loss, val_accuracy=None if accuracy is None else float(accuracy))

    def on_train_end(self, trainer, pl_module) -> None:
        if self.recorder is None:
            return
        self.recorder.close()
        if self.path is not None:
            self.recorder.save(self.path)
            return
        import mlflow

        if mlflow.active_run() is not None:
            self.recorder.save()
