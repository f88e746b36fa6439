"""The loop: plain SGD, one face per update, drawn from the training faces (the post's online
updates); every `steps // 25` updates the held-out faces are scored and the units probed."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from failbench.cases.identity_filter.data import load_faces, split
from failbench.cases.identity_filter.model import (
    FaceFilter,
    impulse_response,
    initialise,
    off_centre_share,
    pictures,
    probe_metrics,
    psnr_db,
    tanh_ceiling,
)
from failbench.probes import Probe

LOGGED_POINTS = 20  # a logged point costs ~3 updates (a 20-face forward and backward) and MLflow rows


def loss_of(name: str):
    losses = {"mse": F.mse_loss, "l1": F.l1_loss}
    if name not in losses:
        raise ValueError(f"unknown loss {name!r}; choose from {sorted(losses)}")
    return losses[name]


class PlainSGD(torch.optim.Optimizer):
    """w -= lr * dL/dw, nothing else (the post's gradient descent; torch.optim.SGD at momentum 0
    does the same arithmetic through more Python, which dominates a 25x25 one-face step). An
    Optimizer subclass, so the trace's optimizer hooks see its updates as any torch optimizer's."""

    def __init__(self, params, lr: float):
        super().__init__(params, {"lr": lr})

    @torch.no_grad()
    def step(self, closure=None) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                p.add_(p.grad, alpha=-group["lr"])


def optimiser(cfg, model: torch.nn.Module):
    if cfg.optimizer == "sgd":
        return PlainSGD(model.parameters(), lr=cfg.lr)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=cfg.adam_lr)
    raise ValueError(f"unknown optimizer {cfg.optimizer!r}")


def measure(
    model: FaceFilter, probe: Probe, opt, loss_fn, held: torch.Tensor, per_layer: bool = False
) -> dict[str, float]:
    """Held-out PSNR and loss, and the probes (saturation, gradient norms) on one held-out forward
    and backward pass; the step zeroes that gradient, so measuring never moves the weights."""
    probe.attach()
    out = model(held)
    opt.zero_grad()
    loss = loss_fn(out, held)
    loss.backward()
    probe.detach()
    # The held-out gradient stays on the weights for the trace (run.trace reads .grad at this
    # log step); the next training step zeroes it before its own backward.
    return {
        "test_psnr_db": psnr_db(out.detach(), held),
        "loss": float(loss.detach()),
        **probe_metrics(probe, model, per_layer=per_layer),
    }


def train(cfg, run) -> dict[str, float]:
    faces, held = split(load_faces(cfg.face_dir, cfg.image_size).to(run.device), cfg.train_faces, cfg.held_out_faces)
    if cfg.judged_faces not in ("held_out", "train"):
        raise ValueError(f"unknown judged_faces {cfg.judged_faces!r}; choose from held_out, train")
    if cfg.judged_faces == "train":  # every "held-out" number below is then on the training faces
        held = faces
    ceiling, _, _ = tanh_ceiling(held)
    handset = psnr_db(torch.tanh(held), held)  # the post's hand-set kernel: a lone 1 in the centre
    # One grey level for every pixel, the training faces' mean: 13.5 dB on the held-out faces, 15.2
    # on face 0 alone. Below it the output has stopped following the face (the +-1 silhouettes of a
    # collapse); between it and the kernel is the post's "ugly version ... an honest attempt".
    grey = psnr_db(faces.mean().expand_as(held), held)
    model = FaceFilter(cfg.hidden_layers, cfg.maps, cfg.activation, cfg.skip).to(run.device)
    initialise(model, cfg.init)
    run.trace.watch(model)
    init_response = float(impulse_response(model, held).flatten(1).norm(dim=1).mean())
    opt, loss_fn, probe = optimiser(cfg, model), loss_of(cfg.loss), Probe(model)
    # the faces in the order they are shown, drawn with replacement from the seeded generator
    order = torch.randint(len(faces), (cfg.steps, cfg.faces_per_step), device=run.device)
    every = run.log_every(cfg.steps, LOGGED_POINTS)
    half = {}
    for step in range(cfg.steps + 1):
        if step % every == 0 or step == cfg.steps:
            last = step == cfg.steps
            metrics = measure(model, probe, opt, loss_fn, held, per_layer=last)
            metrics.update(
                vs_handset_db=metrics["test_psnr_db"] - handset, gap_to_ceiling_db=ceiling - metrics["test_psnr_db"]
            )
            if step <= cfg.steps // 2:
                half = metrics
            if last:
                break
            run.log(step, **metrics)
        x = faces[order[step]]
        loss = loss_fn(model(x), x)
        opt.zero_grad()
        loss.backward()
        opt.step()
    response = impulse_response(model, held)  # the end-to-end response, a jvp
    with torch.no_grad():
        train_psnr = psnr_db(model(faces), faces)  # the post: "how well it does on that same training example"
    metrics.update(
        train_psnr_db=train_psnr,
        response_off_centre=float(off_centre_share(response).mean()),
        late_gain_db=metrics["test_psnr_db"] - half["test_psnr_db"],
        init_response_norm=init_response,
        ceiling_psnr_db=ceiling,
        handset_psnr_db=handset,
        vs_grey_db=metrics["test_psnr_db"] - grey,
        collapsed=float(metrics["test_psnr_db"] < grey),
    )
    run.log(cfg.steps, **metrics)
    if run.seed == 0:  # the report shows seed 0; a run's four PNGs cost ~0.07 s to log
        for name, picture in pictures(model, held, response).items():
            run.image(name, picture)
    return metrics
