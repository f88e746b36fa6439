"""dead_relu_adam: a digit CNN under Adam at a large rate; a ReLU layer dies and the loss sits at 2.30.

Reproduces reply 16 of the PyTorch Forums thread "Cross Entropy loss is not decreasing" (topic
43814): a classifier whose cross-entropy "always stays the same equal to 2.30" (ln 10, 10 classes at
chance), whose parameters, looked at, "are almost all negative, and their derivatives are all zero":
"negative parameters and ReLU activation". The reply's fixes: remove a softmax passed into
CrossEntropyLoss (the thread's first answer), a smaller learning rate or a scheduler that lowers it
during training, and SGD instead of Adam.
"""

from __future__ import annotations

from dataclasses import dataclass

from failbench.cases.dead_relu_adam.train import train
from failbench.contract import CURED, SYMPTOM, Case, Expectation, Fix, Profile, Symptom, Task, Threshold


@dataclass(frozen=True)
class Config:
    activation: str = "relu"  # the reply: "negative parameters and ReLU activation"
    softmax_output: bool = False  # the thread's first bug; the reply's state (2.30, not 2.36) has none (README)
    optimizer: str = "adam"  # the reply: "Use SGD optimizer instead of Adam"
    lr: float = 0.3  # chosen from explore_lr (README): the reply's "smaller learning rate" says it was large
    scheduler: str = "none"  # the reply's other fix: a scheduler that lowers the rate during training
    batch_size: int = 100  # chosen: the reply does not say; 14 updates an epoch on 1,400 digits
    steps: int = 300  # budget: updates (~21 epochs; the reply printed 6 epochs at 2.30)


FIXES = (
    Fix(
        "lower_lr",
        {"lr": 0.001},
        why="the reply's second fix, a smaller rate: Adam's default, 0.001; each of Adam's first "
        "steps moves every weight by about the rate, whatever its gradient",
    ),
    Fix(
        "sgd",
        {"optimizer": "sgd"},
        why="the reply's third fix: plain SGD at the same rate, its steps sized by the gradient",
    ),
    Fix(
        "lr_scheduler",
        {"scheduler": "plateau"},
        why="the reply's second fix, other half: a scheduler that lowers the rate as the loss stalls "
        "(ReduceLROnPlateau, torch's defaults); but a unit dead on every digit gets no gradient to "
        "come back with, at any rate",
    ),
    Fix(
        "leaky_relu",
        {"activation": "leaky"},
        why="the usual advice for dead ReLUs: a slope of 0.01 below zero, so no unit's gradient is ever exactly 0",
    ),
)

_QUICK = ("quick",)
_CHANCE = Threshold(
    "train_loss",
    ">=",
    2.25,
    why="the reply's loss 'always stays the same equal to 2.30' (2.297-2.309 over six epochs): "
    "ln 10 = 2.303 is the cross-entropy of an output that is the same for every digit",
)
_DEAD_LAYER = Threshold(
    "dead_units",
    ">=",
    1.0,
    why="the reply's reason, at its strongest: every unit of a hidden ReLU layer zero on every "
    "training digit, so nothing of the digit reaches the output and no gradient reaches below",
)
# At 10x the budget (full: 3,000 updates, seeds 0-9 and 100-109, README). Ten seeds a range: a claim
# on 10/10 carries 50% within the full profile's even share of its risk.
FULL_EXPECTATIONS = (
    Expectation(
        "baseline",
        SYMPTOM,
        profiles=("full",),
        min_share=0.5,
        why="persistent: a unit zero on every digit has a zero gradient, so no number of updates revives it",
    ),
    Expectation("lower_lr", CURED, profiles=("full",), min_share=0.5, why="the cure holds at 10x"),
    Expectation("sgd", CURED, profiles=("full",), min_share=0.5, why="the cure holds at 10x"),
    Expectation(
        "lr_scheduler",
        SYMPTOM,
        profiles=("full",),
        min_share=0.5,
        why="a lower rate later does not revive a layer that died in the first updates",
    ),
)

EXPECTATIONS = (
    Expectation(
        "baseline",
        SYMPTOM,
        profiles=_QUICK,
        also=(_DEAD_LAYER,),
        why="the reply's failure, for its reason: the loss at ln 10 with a whole ReLU layer dead",
    ),
    Expectation("lower_lr", CURED, profiles=_QUICK, why="the cure: steps too small to push a whole layer below zero"),
    Expectation(
        "sgd", CURED, profiles=_QUICK, why="the cure: a step sized by the gradient, small where the net is fine"
    ),
    Expectation(
        "lr_scheduler",
        SYMPTOM,
        profiles=_QUICK,
        also=(_DEAD_LAYER,),
        why="not a cure: the layer dies in the first updates, before any stall the scheduler could see",
    ),
    Expectation(
        "leaky_relu",
        ("unlearned", SYMPTOM),
        profiles=_QUICK,
        why="not a cure: no unit is ever dead, yet the net classifies 40-80% of held-out digits or "
        "stays at chance (README)",
    ),
)

CASE = Case(
    title="A digit CNN under Adam at a large rate: a ReLU layer dies and the loss sits at 2.30",
    post='PyTorch Forums thread "Cross Entropy loss is not decreasing" (topic 43814), reply 16, '
    "https://discuss.pytorch.org/t/cross-entropy-loss-is-not-decreasing/43814/16",
    baseline=Config(),
    train=train,
    symptom=Symptom(
        "the loss stays at ln 10: the net is at chance",
        all_of=(
            _CHANCE,
            Threshold(
                "train_accuracy",
                "<=",
                0.2,
                why="'precisely equal to guessing randomly': 10% for 10 classes (a large loss with the digits "
                "mostly classified is another failure)",
            ),
        ),
    ),
    task=Task(
        "classifies held-out digits",
        all_of=(
            Threshold(
                "test_accuracy",
                ">=",
                0.9,
                why="a classifier, not the reply's chance: this net at Adam's default rate tests at "
                "93-97% on its 397 held-out digits in the quick budget (README)",
            ),
        ),
    ),
    fixes=FIXES,
    expectations=EXPECTATIONS + FULL_EXPECTATIONS,
    profiles={
        "quick": Profile(seeds=10, budget={"steps": 300}),
        "full": Profile(seeds=10, budget={"steps": 3000}),
        # The rate the reply leaves open, swept on the baseline around its 0.3 (the quick profile's
        # baseline row): from which rate does Adam kill a layer?
        "explore_lr": Profile(
            seeds=10, budget={"steps": 300}, explores={"lr": (0.01, 0.03, 0.1, 1.0)}, variants=("baseline",)
        ),
        # The thread's first bug, a softmax fed to CrossEntropyLoss, at the baseline's rate
        "explore_softmax": Profile(
            seeds=10, budget={"steps": 300}, explores={"softmax_output": (True,)}, variants=("baseline",)
        ),
    },
    # dead_units is not logged by leaky_relu (a leaky unit is never zero), so it is not a key metric
    key_metrics=("train_loss", "train_accuracy", "test_accuracy", "negative_params"),
    smoke_budget={"steps": 3},
    failure_class="dead_relu",
    mechanism=Symptom("the reply's reason: a hidden ReLU layer dead on every training digit", all_of=(_DEAD_LAYER,)),
    scalars={"loss": "loss", "train_accuracy": "batch_accuracy", "val_accuracy": "test_accuracy"},
)
