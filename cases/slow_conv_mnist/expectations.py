"""What each variant shows, as data: measured over the profile's seeds (README has the tables).

The symptom (case.py) is the post's contrast in time: the network needs more than twice the
images the post's MLP needs to leave chance, the MLP trained the post's way beside it on the same
images. Thresholds here come from the physics of the plateau, not from the measured numbers:
- "at chance": the fixed digits are balanced, so a network that gives every digit the same answer
  scores exactly 10%; `left_chance` is 1 once it scores above twice that;
- "beats the post's MLP": the post expected a conv layer to "improve the accuracy of my testing";
  `test_accuracy_vs_mlp` is the network's test accuracy minus the post's MLP's, same images.
"""

from __future__ import annotations

from failbench.contract import CURED, SYMPTOM, UNLEARNED, Expectation, Task, Threshold

STUCK = (Threshold("left_chance", "<=", 0.0, why="never above twice chance on the balanced fixed digits"),)
LEFT = (Threshold("left_chance", ">=", 1.0, why="above twice chance on the balanced fixed digits"),)
BEATS_MLP = (
    Threshold(
        "test_accuracy_vs_mlp", ">", 0.0, why="the post: a conv layer 'should improve the accuracy' over its MLP"
    ),
)
BELOW_MLP = (
    Threshold("test_accuracy_vs_mlp", "<", 0.0, why="not cured: below the post's MLP trained on the same images"),
)
REACHES_MLP = Threshold(
    "test_accuracy_vs_mlp", ">=", 0.0, why="the post's yardstick: its MLP's test accuracy, same images (0 for the MLP)"
)
TASK = Task("leaves chance and reaches the post's MLP on the test digits", all_of=(*LEFT, REACHES_MLP))
MLP, CONV, LENET = {"network": "mlp"}, {"network": "conv"}, {"network": "lenet5"}
QUICK, FULL = ("quick",), ("full",)


def _under(readings, networks, shows, also, why: str, **kw) -> tuple[Expectation, ...]:
    """The baseline under each of `readings` (the `explore_init` profile), on each of `networks`."""
    return tuple(
        Expectation("baseline", shows, where={**net, "init": r}, also=also, profiles=("explore_init",), why=why, **kw)
        for r in readings
        for net in networks
    )


EXPECTATIONS = (
    # quick: 12,000 images, 10 seeds. The contrast, and each fix on the conv net.
    Expectation(
        "baseline",
        CURED,
        where=MLP,
        also=LEFT,
        profiles=QUICK,
        why="the post's MLP (1e-3) leaves chance within a few thousand images: it is the yardstick",
    ),
    Expectation(
        "baseline",
        SYMPTOM,
        where=CONV,
        also=STUCK,
        profiles=QUICK,
        why="the post's conv net (5e-4) is still at chance after 2.5x the images its MLP "
        "needed: the post's contrast, early",
    ),
    Expectation(
        "cross_entropy",
        SYMPTOM,
        where=CONV,
        also=STUCK,
        profiles=QUICK,
        why="no help: on the plateau softmax(~0) = 0.1, so p - t is the squared error's "
        "y - t, and the gradient through the tiny layers is as tiny",
    ),
    Expectation(
        "glorot_init",
        CURED,
        where=CONV,
        also=BEATS_MLP,
        profiles=QUICK,
        why="the init is the trap: at unit scale the conv net leaves chance at once, at the "
        "post's own rate and loss, and passes the post's MLP",
    ),
    Expectation(
        "relu",
        CURED,
        where=MLP,
        profiles=QUICK,
        why="ReLU frees the MLP (its first layer sees the pixels; slope 1, no 0.5 offset) ...",
    ),
    Expectation(
        "relu",
        (SYMPTOM, UNLEARNED),
        where=CONV,
        also=BELOW_MLP,
        profiles=QUICK,
        why="... but not the conv net: its digit signal still crosses the tiny conv layer "
        "and the 2/3920 layer; it leaves chance late (1.6-20x the MLP's images, under "
        "2x on 2 of 20 seeds measured) and stays below the post's MLP",
    ),
    Expectation(
        "adam",
        CURED,
        where=CONV,
        also=BEATS_MLP,
        profiles=QUICK,
        min_share=0.6,
        why="Adam's step does not shrink with the gradient: the plateau's tiny gradients "
        "move the weights at full speed (cured on 49 of 50 pooled seeds)",
    ),
    Expectation(
        "averaged_batches",
        SYMPTOM,
        where=CONV,
        also=STUCK,
        profiles=QUICK,
        why="averaging divides every step by the batch (16): the plateau lasts longer still",
    ),
    Expectation(
        "averaged_batches",
        (SYMPTOM, UNLEARNED),
        where=MLP,
        also=BELOW_MLP,
        profiles=QUICK,
        why="the MLP itself slows down and ends below the post's MLP: the usual advice moves "
        "the contrast, it cures nothing",
    ),
    Expectation(
        "largest_stable_lr",
        CURED,
        where=CONV,
        profiles=QUICK,
        min_share=0.6,
        why="the post's own lever works: at 10x its rate the conv net leaves chance as soon as its "
        "MLP does (49 of 50 pooled seeds); the post's rate, not its network, set the plateau's length",
    ),
    Expectation(
        "glorot_init+adam",
        CURED,
        where=CONV,
        also=BEATS_MLP,
        profiles=QUICK,
        why="the recipe of today's tutorials, on the post's loss and units",
    ),
    # explore_init: the four readings of "2 / volume size", seeds 0-9 and 100-109 (README).
    *_under(
        ("std_volume", "std_fanin"),
        (CONV,),
        (SYMPTOM, UNLEARNED),
        BELOW_MLP,
        "under a standard-deviation reading the conv net stays at chance or barely leaves it: below "
        "the post's MLP beside it at 12,000 images (39 of 40 pooled seeds)",
        min_share=0.6,
    ),
    *_under(
        ("std_volume", "std_fanin"),
        (LENET,),
        SYMPTOM,
        STUCK,
        "LeNet-5 under a standard-deviation reading never leaves chance in 12,000 images",
    ),
    *_under(
        ("var_volume", "var_fanin"),
        (CONV, LENET),
        (SYMPTOM, CURED, UNLEARNED),  # the claim is the escape, whatever the verdict
        LEFT,
        "under a variance reading (He et al.'s init for V = fan-in) every network leaves chance: "
        "what is left of the post's contrast is a delay",
    ),
    # full: the post's 120,000 images, 5 seeds: the baseline and `glorot_init` (the other fixes are
    # not run at full, so nothing is claimed for them there).
    Expectation(
        "baseline", CURED, where=MLP, also=LEFT, profiles=FULL, why="the post's MLP leaves chance first and learns"
    ),
    *(
        Expectation(
            "glorot_init",
            CURED,
            where=network,
            also=BEATS_MLP,
            profiles=FULL,
            why="at the post's scale a unit-scale init cures the MLP and the conv net, each ending "
            "above the post's MLP trained beside it (seeds 0-4 and 100-104: 10/10 each)",
        )
        for network in (MLP, CONV)
    ),
    Expectation(
        "glorot_init",
        (CURED, SYMPTOM),
        where=LENET,
        also=(*LEFT, *BEATS_MLP),
        profiles=FULL,
        why="LeNet-5 too leaves chance and ends above the post's MLP on every seed; cured on 9 of 10 "
        "(seeds 0-4 and 100-104): seed 104 leaves chance after 2.04x its MLP's images, over the 2x "
        "symptom line by a hair, and still tests 8 points above it",
    ),
    Expectation(
        "baseline",
        SYMPTOM,
        where=CONV,
        profiles=FULL,
        why="the conv net leaves chance an order of magnitude later than its MLP (~50,000 "
        "images): the post's 51% is a snapshot of that climb",
    ),
    Expectation(
        "baseline",
        SYMPTOM,
        where=LENET,
        also=STUCK,
        profiles=FULL,
        why="LeNet-5 never leaves chance in the post's 120,000 images: 'the error not changing at all'",
    ),
)
