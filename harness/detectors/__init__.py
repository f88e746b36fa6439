"""The diagnosis rules: the published rules of training-diagnosis tools, one module per tool, and
failbench's own detector beside them (own.py, fitted to the suite's runs); each rule a pure function
of a trace (written by harness/trace.py, read through harness/trace_reader.py) returning a Finding
(detectors/base.py): fired at a step, quiet, or abstained.

A rule abstains when the trace lacks the signal it reads (no validation accuracy, no ReLU layer):
that is scored as an abstention, never as quiet. Checks run at the trace's points, which stand
for the tools' checks (an epoch end, a period of iterations); the windows the tools count in checks
(DeepDiagnosis' 5, TheDeepChecker's 5) are counted in trace points.
"""

from __future__ import annotations

from failbench.detectors import autotrainer, deepdiagnosis, own, sagemaker, thedeepchecker
from failbench.detectors.base import Tool


def tools() -> tuple[Tool, ...]:
    """Every tool `failbench detect` scores, failbench's own last."""
    return (
        autotrainer.TOOL,
        autotrainer.TOOL_UNGATED,
        deepdiagnosis.TOOL,
        thedeepchecker.TOOL,
        sagemaker.TOOL,
        own.TOOL,
    )
