"""failbench: a reference suite of documented CNN training failures, and a recorder for your own loop.

    import failbench
    rec = failbench.watch(model, optimizer)             # warn=True: a warning the step a failure settles

The package is the harness/ folder of the repository (the cases/ folder is `failbench.cases`).
`watch` and `Recorder` load torch on first use, so the command line starts without it.
"""

from __future__ import annotations

__all__ = ["FailureWarning", "Recorder", "watch"]


def __getattr__(name: str):
    if name == "Recorder":
        from failbench import recorder

        return recorder.Recorder
    if name in __all__:
        from failbench import watching

        return getattr(watching, name)
    raise AttributeError(f"module 'failbench' has no attribute {name!r}")
