"""sigmoid_stack's training loop: minibatch SGD on cross-entropy, the loss and accuracy, and what the
answer's explanation predicts: an output the same for every digit and steps tiny against the weights.

The config and the declarations (fixes, expectations) are in case.py; data and network in model.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from failbench.cases.sigmoid_stack.model import SigmoidStack, load

if TYPE_CHECKING:  # the config is declared beside the fixes that change it
    from failbench.cases.sigmoid_stack.case import Config

MEASURED_EVERY = 10  # of the ~100 logged steps: the whole sets cost a third of a run measured at each


@torch.no_grad()
def measure(model: SigmoidStack, data) -> dict[str, float]:
    """Loss (`train_loss`) and accuracy on the 1,400 training digits, test accuracy, and
    `output_spread`: the std of each logit across the training digits, averaged over the 10 (0 when
    every digit gets the same output)."""
    train_x, train_y, test_x, test_y = data
    out = model(train_x)
    return {
        "train_loss": float(F.cross_entropy(out, train_y)),
        "train_accuracy": float((out.argmax(1) == train_y).float().mean()),
        "test_accuracy": float((model(test_x).argmax(1) == test_y).float().mean()),
        "output_spread": float(out.std(0, correction=0).mean()),
    }


def update_ratio(before: list[torch.Tensor], after: list[torch.Tensor]) -> float:
    """The median over the weight matrices of |update| / |weight|, Frobenius norms, of one step."""
    ratios = torch.stack([(a - b).norm() / b.norm() for b, a in zip(before, after)])
    return float(ratios.median())


def train(cfg: Config, run) -> dict[str, float]:
    data = load(run.device)
    train_x, train_y = data[0], data[1]
    model = SigmoidStack(cfg.width, cfg.depth, cfg.activation, cfg.init).to(run.device)
    run.trace.watch(model)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr)
    every = run.log_every(cfg.steps)
    batches = len(train_y) // cfg.batch_size
    ratio = float("nan")
    for step in range(cfg.steps):
        if step % batches == 0:  # a new epoch: the digits reshuffled by the run's seeded generator
            order = torch.randperm(len(train_y), device=run.device)
        idx = order[(step % batches) * cfg.batch_size : (step % batches + 1) * cfg.batch_size]
        out = model(train_x[idx])
        loss = F.cross_entropy(out, train_y[idx])
        run.guard(step, loss=loss)
        opt.zero_grad()
        loss.backward()
        last = step == cfg.steps - 1
        before = [w.detach().clone() for w in model.weights()] if step % every == 0 or last else None
        opt.step()
        if before is not None:
            ratio = update_ratio(before, [w.detach() for w in model.weights()])
        if step % every == 0:
            whole = measure(model, data) if step % (every * MEASURED_EVERY) == 0 else {}
            run.log(step, loss=float(loss.detach()), update_ratio=ratio, **whole)
    final = {**measure(model, data), "update_ratio": ratio}
    run.log(cfg.steps, **final)
    return final
