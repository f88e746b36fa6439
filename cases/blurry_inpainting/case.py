"""blurry_inpainting: a conv autoencoder fills a missing centre with a blur, darker with dropout.

Reproduces Patrick Mesana, "Deep Learning Class Project Journal — Day2" (class-project journal,
Medium, 30 April 2017):
64x64 images with the 32x32 centre missing, a conv autoencoder with 7 conv, 2 max-pool and 2
upsampling layers, ReLU, Adam and binary cross-entropy, input = the image without its middle,
target = the full image. The fills are blurry; with batch norm or dropout, darker. The baseline keeps
all of that; README.md says what the post leaves open (filter counts, sigmoid output, the hole's fill).
"""

from __future__ import annotations

from dataclasses import dataclass

from failbench.cases.blurry_inpainting.train import fit
from failbench.contract import CURED, SYMPTOM, Case, Expectation, Fix, Profile, Symptom, Task, Threshold


@dataclass(frozen=True)
class Config:
    patch_size: int = 64  # the post: 64x64 images with the 32x32 centre missing (budget: quick uses 32)
    filters: int = 8  # chosen: the post does not say (it tried "different number of filters"); see README
    depth: int = 1  # the post's ConvNet v1: "7 Conv, 2 Maxpooling, 2 Upsampling"; 2 = its v2, convs doubled
    norm: str = "none"  # ConvNet v1 has no batch norm
    dropout: float = 0.0  # ConvNet v1 has no dropout
    skips: bool = False  # an autoencoder: everything goes through the 4x-pooled bottleneck
    dilation: int = 1  # the bottleneck's three convs are plain 3x3 (the Keras tutorial's recipe)
    spatial_dropout: float = 0.0  # no dropout in ConvNet v1
    loss: str = "bce"  # the post: "Loss : binary crossentropy" (so the output is a sigmoid)
    loss_region: str = "image"  # the post: "Target : Full image"
    adv_weight: float = 0.0  # no adversary in the post
    hole_value: float = 0.0  # chosen: the post says "without middle"; the hole is black (zeros)
    lr: float = 1e-3  # the post: "Optimization : Adam", at Keras' default rate
    batch_size: int = 16  # chosen: the post does not say; see README
    steps: int = 20000  # budget: 20000 x 16 = 320k patches, ~4 of the post's 100 epochs of MSCOCO (~83k)
    image_dir: str = ""  # "" = patches of the shipped photos; else a folder (MSCOCO) resized to 64x64
    held_out_images: int = 1000  # with image_dir: the last 1000 images are held out


def train(cfg: Config, run) -> dict[str, float]:
    return fit(cfg, run)


SHARPNESS = 0.58  # the sharpness ratio of the truth blurred by sigma 1.5 px (README, tests)
FIXES = (
    Fix(
        "unet",
        {"skips": True},
        why="U-Net skips hand the decoder the border at full resolution, past the 4x-pooled bottleneck",
    ),
    Fix(
        "dilated",
        {"dilation": 2},
        why="the bottleneck's 3 convs dilated by 2 widen the receptive field from ~40 to ~64 px, so on "
        "the post's 64x64 patches the hole's centre sees 14-17 px of border instead of 2-5",
    ),
    Fix(
        "adversarial_0.1",
        {"adv_weight": 0.1},
        why="an average of plausible fills is easy for a discriminator to tell from a real one; Context "
        "Encoders' 0.001 is for 128 px and long training, and moves the fill only slowly here",
    ),
    Fix("batchnorm", {"norm": "batch"}, why="the post: BN after each conv for faster convergence"),
    Fix(
        "dropout",
        {"dropout": 0.25},
        why="the post tried dropout 'for fun'; 0.25 element-wise after every hidden ReLU (Keras' Dropout "
        "after each conv block, as in its mnist_cnn example)",
    ),
    Fix(
        "spatial_dropout",
        {"spatial_dropout": 0.25},
        why="the same rate, once after the bottleneck, whole feature maps (Dropout2d): its noise meets "
        "one ReLU on its way out, where element-wise dropout's six layers meet up to five",
    ),
)

# `quick` (250 steps; the adversarial cure 800, the steps it needs) and `long` (800 steps) run 10
# seeds each on 32x32 patches; `full` (64x64 patches, 20000 steps, a GPU) has not been run, so it
# carries no expectation until it has (README: what a GPU run must settle).
FLAT_PSNR = 16.6  # dB: each hole filled with its own true mean colour (an oracle flat fill), 32x32 patches
WEBER = 0.02  # a uniform darkening becomes visible at a Weber contrast of ~1-2% (Weber's fraction)
_LEARNED = Threshold("psnr_db", ">", FLAT_PSNR, why="the fill beats the oracle flat fill: a blur, not nothing")
_DARK = (
    Threshold("brightness_bias", "<", 0.0, why="the post's 'darker': the fill is darker than the truth"),
    Threshold(
        "inference_shift",
        "<",
        0.0,
        why="paired, per seed, against zero: the same weights are darker in inference mode than "
        "with dropout's masks averaged (or BN's statistics recomputed); exactly 0 without either",
    ),
    Threshold(
        "inference_contrast",
        "<",
        -WEBER,
        why="visibly: the shift's Weber contrast is past the eye's ~2% for a uniform darkening",
    ),
)
_NOT_VISIBLY_DARK = Threshold(
    "inference_contrast", ">", -WEBER, why="inference mode does not darken the fill visibly (Weber contrast under 2%)"
)
_BLURRY = ("quick", "long")
EXPECTATIONS = (
    Expectation(
        "baseline",
        SYMPTOM,
        profiles=("quick",),
        why="the post's failure: a blur (the pixel loss's optimum is the mean of plausible fills); "
        "after 250 steps it beats a flat fill by only 0.0-1.2 dB (README)",
    ),
    Expectation(
        "baseline",
        SYMPTOM,
        also=(_LEARNED,),
        profiles=("long",),
        why="the post's failure, persistent: a blur that beats the oracle flat fill",
    ),
    Expectation(
        "unet",
        SYMPTOM,
        profiles=_BLURRY,
        why="does not cure: the skips carry the border, but the hole's content is still a mean",
    ),
    Expectation(
        "dilated",
        SYMPTOM,
        profiles=_BLURRY,
        why="does not cure on 32x32 patches, where the plain receptive field (~40 px) already "
        "spans the whole patch; the post's 64x64 is where it could matter (full)",
    ),
    Expectation(
        "adversarial_0.1",
        CURED,
        profiles=("quick", "long"),
        min_share=0.2,
        why="the cure, on some seeds only: sharper than the blurred truth on 5 to 9 of each 10 "
        "(34.5 of 50 over five ranges and two CPU capabilities, which split one seed, when it was "
        "sized), so the evidence carried no more than 'on >= 2 of 10': the adversary oscillates, "
        "and where a seed sits at step 800 is chaotic. Its cost, 0.8-1.0 dB of PSNR against the "
        "baseline, is a two-sample comparison (README); per seed the sharpest fill pays the most",
    ),
    Expectation(
        "batchnorm",
        SYMPTOM,
        also=_DARK,
        profiles=("quick",),
        min_share=0.5,
        why="the post's darker fills: Keras' 0.99 moving averages lag the weights after 250 "
        "steps; statistics recomputed at the final weights give the truth's brightness. "
        "Measured on 47 of 50 pooled seeds: where the weights are heading at step 250 decides "
        "the lag's sign, so 'most seeds'",
    ),
    Expectation(
        "dropout",
        SYMPTOM,
        also=_DARK,
        profiles=_BLURRY,
        why="the post's darker fills: inverted dropout keeps each layer's mean input, but ReLU "
        "outputs shrink without the noise, so the logit falls at inference (variance shift)",
    ),
    Expectation(
        "spatial_dropout",
        SYMPTOM,
        also=(_NOT_VISIBLY_DARK,),
        profiles=("quick",),
        why="the placement decides the darkening: one Dropout2d after the bottleneck shifts the "
        "fill far less than element-wise dropout after every ReLU (README: the paired test)",
    ),
    Expectation(
        "spatial_dropout",
        SYMPTOM,
        profiles=("long",),
        why="blurry; its darkening stays small but is not always under the eye's 2%: at 800 steps "
        "2 of the held-out seeds 100-109 cross it, by a hair (README)",
    ),
    # The post's geometry (`post_geometry`: 64x64 patches, its 32x32 hole, 2000 steps), 5 seeds a
    # variant (~3 CPU-minutes a run), seeds 0-4 and 100-104: 10 seeds that all match carry ">= 3 of
    # a fresh 5" (a fresh run fails it with 0.3%; ">= 4 of 5" with 3.9%).
    Expectation(
        "baseline",
        SYMPTOM,
        profiles=("post_geometry",),
        min_share=0.6,
        why="the post's blur, at the post's geometry",
    ),
    Expectation(
        "dilated",
        SYMPTOM,
        profiles=("post_geometry",),
        min_share=0.6,
        why="where the plain receptive field reaches only 2-5 px past the hole's edge, a dilated "
        "bottleneck (14-17 px) still fills a blur: the receptive field is not the cause",
    ),
    Expectation(
        "adversarial_0.1",
        (CURED, "unlearned"),  # contract.UNLEARNED; the import list is part of the code's hash
        profiles=("post_geometry",),
        min_share=0.6,
        why="the adversary removes the blur at 64 px too; on some seeds at a PSNR below the flat "
        "fill (unlearned), so 'no longer a blur' is the claim, not 'cured'",
    ),
    Expectation(
        "dropout",
        SYMPTOM,
        also=_DARK,
        profiles=("post_geometry",),
        min_share=0.6,
        why="the post's darker fills with dropout, at its geometry: the variance shift compounds",
    ),
)

CASE = Case(
    title="A conv autoencoder fills a missing centre with a blur; darker with dropout, and early on with BN",
    post='Patrick Mesana, "Deep Learning Class Project Journal — Day2", class-project journal (Medium), 30 April 2017',
    baseline=Config(),
    train=train,
    symptom=Symptom(
        "the fill has less edge than the truth blurred by sigma 1.5 px (on 32x32 patches)",
        all_of=(
            Threshold(
                "sharpness_ratio",
                "<",
                SHARPNESS,
                why="the held-out truth blurred by a Gaussian of sigma 1.5 px (skimage's "
                "anti-aliasing sigma for the bottleneck's 4x down-sampling) scores 0.58 on "
                "32x32 patches (0.60 on 64x64: each run logs its blurred_truth_sharpness_ratio)",
            ),
        ),
    ),
    task=Task(
        "fills the hole better than a flat colour, with no more edges than the truth has",
        all_of=(
            _LEARNED,
            Threshold(
                "sharpness_ratio",
                "<=",
                1.0,
                why="1 is the truth's own edge energy in the hole: a fill above it draws edges the "
                "truth does not have (the adversary's stripes), an artifact, not a cure",
            ),
        ),
    ),
    fixes=FIXES,
    expectations=EXPECTATIONS,
    profiles={
        # the adversarial cure gets the 800 steps it needs (README), so `make all` judges it
        "quick": Profile(
            seeds=10, budget={"patch_size": 32, "steps": 250}, variant_budget={"adversarial_0.1": {"steps": 800}}
        ),
        "long": Profile(seeds=10, budget={"patch_size": 32, "steps": 800}),
        "full": Profile(seeds=5, budget={"patch_size": 64, "steps": 20000}),
        # The post's geometry on a CPU: 64x64 patches with its 32x32 hole, 2000 steps (2.5x long's
        # 800; ~2 CPU-minutes a run), 5 seeds of the four variants whose answer could change with
        # the geometry: the blur, the receptive field (dilated), the cure, the darkening.
        # The U-Net question (README): another reproduction, with 16/32 filters, a dilated
        # bottleneck and skips, reported a sharper hole. Width and bottleneck, apart and together,
        # with and without the skips, at quick's budget.
        "explore_unet": Profile(
            seeds=10,
            budget={"patch_size": 32, "steps": 250},
            explores={"filters": (8, 16), "dilation": (1, 2)},
            variants=("baseline", "unet"),
        ),
        "post_geometry": Profile(
            seeds=5,
            budget={"patch_size": 64, "steps": 2000},
            variants=("baseline", "dilated", "adversarial_0.1", "dropout"),
        ),
    },
    key_metrics=(
        "psnr_db",
        "ssim",
        "sharpness_ratio",
        "blur_effect",
        "brightness_bias",
        "inference_shift",
        "image_sharpness_ratio",
        "loss",
    ),
    pictures=("masked_input", "fill", "truth"),
    tradeoff=("psnr_db", "sharpness_ratio"),  # distortion against perception (Blau & Michaeli 2018)
    smoke_budget={"patch_size": 32, "steps": 2},
    failure_class="objective_mismatch",  # the pixel loss's optimum is the blur
    scalars={"loss": "loss"},
)
