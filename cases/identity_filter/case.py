"""identity_filter: a deep no-pooling CNN learns a smeared copy of a face, far from a centred delta.

Reproduces ../shared/seeds/000_79640de1a401a644.txt (a CNN that cannot learn the identity): 3x3
'same' convolutions, no pooling, hard tanh hidden, tanh out, pixels in [-1, 1], target = input,
plain gradient descent from random weights. The baseline keeps all of that, with PyTorch's default
init, and a depth axis over 0, 1, 3, 5 hidden layers (the post: fine with 0-1, unbearable with 3).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from cases.identity_filter.data import load_faces, split
from cases.identity_filter.model import (FaceFilter, impulse_response, initialise, off_centre_share,
                                         pictures, probe_metrics, psnr_db, tanh_ceiling)
from harness.contract import HEALTHY, SYMPTOM, Case, Expectation, Fix, Profile, Symptom, Threshold
from harness.probes import Probe


@dataclass(frozen=True)
class Config:
    hidden_layers: int = 3  # the post: "unbearable even with just 3 hidden layers" (an axis)
    maps: int = 4  # chosen: the post's "several image layers" per stack; no number is given
    activation: str = "hardtanh"  # the post: "a hard tanh activation on all hidden layers"
    init: str = "default"  # the post: "randomly initialize the weights"; PyTorch's default
    skip: bool = False  # the post's network has no skip
    optimizer: str = "sgd"  # the post: "learn through gradient descent"; no momentum
    # The post: "even with a large learning constant". 0.3 is the largest step on a factor-~3 grid
    # (0.1, 0.3, 1) the baseline survives at every depth: at 1, depth 1 oscillates at ~20 dB and
    # depths 3-5 drive the tanh units flat (50-100% saturated, zero gradient).
    lr: float = 0.3
    adam_lr: float = 1e-3  # Adam's own default (Kingma & Ba 2015); read only when optimizer="adam"
    loss: str = "mse"  # the post names no cost; squared error is the textbook default for images
    face_dir: str = ""  # "" = skimage lfw_subset faces; else a folder of face images
    image_size: int = 25  # lfw_subset's size; a face_dir is resized to it
    train_faces: int = 1  # the post: artifacts "even if I repeatedly train ... on a single image"
    held_out_faces: int = 20  # the last 20 of the 100 faces, never trained on
    # budget: full-batch steps. By 300 the post's "fine" depth 0 is past the hand-set kernel on
    # every seed (31.6-33.1 dB, measured); 200 leaves it at the kernel's own 30 dB.
    steps: int = 300


def loss_of(name: str):
    losses = {"mse": F.mse_loss, "l1": F.l1_loss}
    if name not in losses:
        raise ValueError(f"unknown loss {name!r}; choose from {sorted(losses)}")
    return losses[name]


def optimiser(cfg: Config, model: torch.nn.Module) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=cfg.lr)  # momentum 0: plain descent
    if cfg.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=cfg.adam_lr)
    raise ValueError(f"unknown optimizer {cfg.optimizer!r}")


def train(cfg: Config, run) -> dict[str, float]:
    x, held = split(load_faces(cfg.face_dir, cfg.image_size).to(run.device),
                    cfg.train_faces, cfg.held_out_faces)
    ceiling, _, _ = tanh_ceiling(held)
    handset = psnr_db(torch.tanh(held), held)  # the post's hand-set kernel: a lone 1 in the centre
    model = FaceFilter(cfg.hidden_layers, cfg.maps, cfg.activation, cfg.skip).to(run.device)
    initialise(model, cfg.init)
    run.trace.watch(model)
    response = impulse_response(model, held)
    init_response = float(response.flatten(1).norm(dim=1).mean())
    opt, loss_fn = optimiser(cfg, model), loss_of(cfg.loss)
    every = max(1, cfg.steps // 100)  # ~100 logged points per run, whatever the budget
    probe_every = 4 * every  # probes on every 4th: a probed step costs ~2 bare ones (measured)
    half_psnr, probe = 0.0, Probe(model)
    for step in range(cfg.steps + 1):
        last = step == cfg.steps
        probing = step % probe_every == 0 or last
        if probing:
            probe.attach()  # hooks only on the steps we probe: the others run bare
        out = model(x)
        loss = loss_fn(out, x)
        opt.zero_grad()
        loss.backward()
        probe.detach()
        train_psnr = psnr_db(out.detach(), x)
        half_psnr = train_psnr if step == cfg.steps // 2 else half_psnr
        if step % every == 0 or last:
            metrics = {"loss": float(loss.detach()), "train_psnr_db": train_psnr}
            if probing:
                metrics.update(probe_metrics(probe, model, per_layer=last))
            if step % (25 * every) == 0 or last:  # 20 held-out forwards cost ~7 steps
                with torch.no_grad():
                    test = psnr_db(model(held), held)
                metrics.update(test_psnr_db=test, gap_to_ceiling_db=ceiling - test,
                               vs_handset_db=test - handset)
            if step == 0 or last:  # the end-to-end response, before and after (a jvp each)
                response = impulse_response(model, held) if last else response
                metrics["response_off_centre"] = float(off_centre_share(response).mean())
            if last:
                metrics.update(late_gain_db=train_psnr - half_psnr, init_response_norm=init_response,
                               ceiling_psnr_db=ceiling, handset_psnr_db=handset)
            run.log(step, **metrics)
        if not last:  # the last pass only measures the final weights
            opt.step()
    if run.seed == 0:  # the report shows seed 0; a run's four PNGs cost ~0.07 s to log
        for name, picture in pictures(model, held, response).items():
            run.image(name, picture)
    return metrics


FIXES = (
    Fix("dirac", {"init": "dirac"},
        why="the post's hand-set kernel at every layer (torch.nn.init.dirac_): the net starts as the "
            "identity through hard tanh and tanh, so there is nothing to find, only a gain to tune"),
    Fix("residual", {"skip": True},
        why="learn x + f(x): the input reaches the output whatever the hidden layers do, so the "
            "start is the hand-set identity and the gradient reaches every layer undamped"),
    Fix("adam", {"optimizer": "adam"},
        why="a per-weight step size (Adam) does not shrink with the gradient, so the small "
            "gradients of the early layers still move them"),
    Fix("relu", {"activation": "relu"},
        why="ReLU has no flat region for positive inputs, the usual advice against saturating units"),
    Fix("kaiming", {"init": "kaiming"},
        why="He et al. 2015: N(0, 2/fan_in) keeps the signal's scale through depth, where PyTorch's "
            "default shrinks it by ~1/sqrt(3) per layer"),
    Fix("relu+kaiming", {"activation": "relu", "init": "kaiming"}, combines=("relu", "kaiming"),
        why="the init He et al. derived for the unit it was derived for"),
    Fix("l1", {"loss": "l1"},
        why="the post asks for another cost; L1 is the usual one for image restoration (Zhao et al. "
            "2017 find fewer splotchy artifacts than with L2)"),
    Fix("dirac+adam", {"init": "dirac", "optimizer": "adam"}, combines=("dirac", "adam"),
        why="start at the identity and take bounded per-weight steps, so the deep chain of gains "
            "cannot overshoot"),
)


def _at(variant: str, shows, why: str, depths=(3, 5), **kw) -> tuple[Expectation, ...]:
    return tuple(Expectation(variant, shows, why=why, where={"hidden_layers": d}, **kw) for d in depths)


# Measured on the quick profile, 5 seeds (README has the table). The full profile's 10x steps
# change what the baseline shows (it is slow, not stuck), so the quick findings are not claimed
# there; only what was measured at the full budget is (2 seeds so far, README; the Dirac variants
# draw no random numbers, so every seed of them is the same run).
_QUICK = ("quick",)
_STILL_CLIMBING = (
    Threshold("late_gain_db", ">", 0.0, why="still improving over the last half of the budget: "
                                             "a run in a local minimum would gain nothing"),
    Threshold("sat_hidden", "<", 0.05, why="fewer than 1 hard tanh unit in 20 flat: saturation "
                                            "does not cut the gradient (measured <= 0.8%)"),
)
EXPECTATIONS = (
    *_at("baseline", SYMPTOM, also=_STILL_CLIMBING, profiles=_QUICK,
         why="the post's failure: smeared copies at 3 and 5 hidden layers, still climbing slowly"),
    *_at("baseline", HEALTHY, also=_STILL_CLIMBING[:1], profiles=("full",),
         why="not a minimum: 10x the steps carry depth 3 and 5 past the hand-set kernel (32.2-32.6 "
             "and 31.3-31.5 dB on 2 seeds), still short of the 33.9 dB ceiling and still climbing"),
    Expectation("baseline", HEALTHY, where={"hidden_layers": 0}, min_share=1.0, profiles=_QUICK,
                why="the post: 'less noticeable with 0~1 hidden layers'; one conv learns a near-delta"),
    *_at("dirac", HEALTHY, depths=(3,), profiles=_QUICK, why="starts at the identity and stays"),
    *_at("dirac", SYMPTOM, depths=(5,), profiles=_QUICK,
         why="with unit gains each of the 6 biases moves the output one-for-one: a step of lr 0.3 "
             "overshoots the output's mean (2 x 0.3 x 6 x tanh' ~ 2.9 > 2) and it oscillates"),
    *_at("residual", HEALTHY, profiles=_QUICK, why="the skip carries x; the layers learn a small correction"),
    *_at("adam", SYMPTOM, depths=(0, 3, 5), profiles=_QUICK,
         why="Adam moves a weight at most ~1e-3 a step: 300 steps cannot carry a centre tap from "
             "its U(-1/3, 1/3) draw to the ~1.16 it needs, even at depth 0"),
    *_at("relu", SYMPTOM, profiles=_QUICK,
         why="a third to two thirds of the ReLU units die (zero on the whole face) and the net "
             "loses the signal; saturation was never the stall"),
    *_at("kaiming", SYMPTOM, profiles=_QUICK,
         why="a large random filter is as far from the identity as a small one, and at depth 5 "
             "it drives up to 13% of the hard tanh units flat"),
    *_at("relu+kaiming", SYMPTOM, profiles=_QUICK,
         why="He's scale keeps the signal's size, but ~55% of the ReLU units still die"),
    *_at("l1", SYMPTOM, depths=(0, 3, 5), profiles=_QUICK,
         why="L1's gradient does not shrink with the error, so at the same step plain descent "
             "hops around the solution, even at depth 0"),
    *_at("dirac+adam", HEALTHY, profiles=_QUICK,
         why="the cure at every depth: identity start, bounded steps"),
)

CASE = Case(
    title="A deep no-pooling CNN cannot learn to copy a face",
    post="000_79640de1a401a644.txt",
    baseline=Config(),
    train=train,
    symptom=Symptom(
        "held-out faces come back worse than through the post's hand-set identity kernel",
        all_of=(Threshold("vs_handset_db", "<", 0.0,
                          why="the post calls the hand-set kernel (tanh(x), ~30 dB here) 'almost "
                              "exactly the identity function I wanted'; a filter that learned less "
                              "than that has not learned the identity"),)),
    fixes=FIXES,
    expectations=EXPECTATIONS,
    profiles={"quick": Profile(seeds=5, budget={"steps": 300}),
              "full": Profile(seeds=20, budget={"steps": 3000, "train_faces": 8})},
    axes={"hidden_layers": (0, 1, 3, 5)},
    key_metrics=("test_psnr_db", "gap_to_ceiling_db", "response_off_centre", "sat_hidden",
                 "grad_first_over_last", "late_gain_db"),
    pictures=("faces_input", "faces_output", "response", "kernels"),
    picture_where={"hidden_layers": 3},
    smoke_budget={"steps": 3},
    # The case's own evidence: still climbing at the quick budget, past the hand-set kernel at 10x.
    failure_class="slow_convergence",
)
