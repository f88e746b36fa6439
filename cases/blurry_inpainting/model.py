"""The post's conv autoencoder (7 conv, 2 max-pool, 2 upsampling, ReLU, sigmoid out) and the pieces
its fixes add: batch norm or dropout after every conv, U-Net skips, a dilated bottleneck, spatial
dropout after the bottleneck, and a small discriminator.

Layer plan (f = `filters`, 'same' 3x3 convs: the recipe of Keras' conv-autoencoder tutorial, Chollet
2016, whose layer types, sigmoid output and binary cross-entropy the post's list matches):
  conv f -> pool -> conv 2f -> pool -> conv 4f x3 -> up -> conv 2f -> up -> conv 3, sigmoid
`depth=2` doubles every conv (the post's "ConvNet v2": 14 conv). The receptive field is 38-42 px
wide (it depends on the pixel's phase against the two pools): the centre of a 64x64 patch's 32x32
hole, 16 px from the border, sees 2-5 px of context on each side. `dilation=2` in the bottleneck's
three convs widens it to 62-66 px (14-17 px of context). On the quick 32x32 patches either one
already spans the whole patch. `spatial_dropout` drops whole feature maps once, after the bottleneck.
"""

from __future__ import annotations

import torch
from torch import nn


def _block(
    c_in: int, c_out: int, depth: int, norm: str, dropout: float, last: bool = False, dilation: int = 1
) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(depth):
        final = last and i == depth - 1
        layers.append(
            nn.Conv2d(c_in if i == 0 else c_out, 3 if final else c_out, 3, padding=dilation, dilation=dilation)
        )
        if norm == "batch":  # the post: "I added BN for each conv layer"; Keras 2 defaults
            layers.append(nn.BatchNorm2d(3 if final else c_out, eps=1e-3, momentum=0.01))
        elif norm != "none":
            raise ValueError(f"unknown norm {norm!r}")
        if final:
            layers.append(nn.Sigmoid())
        else:
            layers.append(nn.ReLU())
            if dropout > 0:  # element-wise, after every hidden ReLU: Keras' Dropout
                layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


class Inpainter(nn.Module):
    """Masked image in, full image out (the post: "Input: Full image without middle, Target: Full
    image"). With `skips`, each decoder stage also sees the encoder's features of its resolution."""

    def __init__(
        self,
        filters: int = 8,
        depth: int = 1,
        norm: str = "none",
        dropout: float = 0.0,
        skips: bool = False,
        dilation: int = 1,
        spatial_dropout: float = 0.0,
    ):
        super().__init__()
        f, k = filters, dict(depth=depth, norm=norm, dropout=dropout)
        self.skips = skips
        self.enc1 = _block(3, f, **k)
        self.enc2 = _block(f, 2 * f, **k)
        self.mid = nn.Sequential(*(_block(c, 4 * f, dilation=dilation, **k) for c in (2 * f, 4 * f, 4 * f)))
        # Whole feature maps dropped once, after the bottleneck (Tompson et al. 2015's SpatialDropout),
        # against `dropout`'s element-wise masks after every hidden ReLU: the noise meets 1 ReLU, not 6.
        self.mid_dropout = nn.Dropout2d(spatial_dropout) if spatial_dropout > 0 else nn.Identity()
        self.dec2 = _block(4 * f + (2 * f if skips else 0), 2 * f, **k)
        self.out = _block(2 * f + (f if skips else 0), 3, last=True, **k)
        self.pool = nn.MaxPool2d(2)
        self.up = nn.Upsample(scale_factor=2, mode="nearest")  # Keras UpSampling2D repeats pixels
        for m in self.modules():  # Keras' Conv2D defaults (the post's library): glorot_uniform, zero bias
            if isinstance(m, nn.Conv2d):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e1 = self.enc1(x)
        e2 = self.enc2(self.pool(e1))
        d2 = self.up(self.mid_dropout(self.mid(self.pool(e2))))
        d2 = self.dec2(torch.cat([d2, e2], 1) if self.skips else d2)
        d1 = self.up(d2)
        return self.out(torch.cat([d1, e1], 1) if self.skips else d1)


class Discriminator(nn.Module):
    """Context Encoders' adversary, scaled down: strided 4x4 convs with LeakyReLU(0.2) (DCGAN's
    recipe, Radford et al. 2016), no batch norm, one logit for "this hole content is real"."""

    def __init__(self, size: int, filters: int = 16):
        super().__init__()
        f = filters
        self.net = nn.Sequential(
            nn.Conv2d(3, f, 4, 2, 1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(f, 2 * f, 4, 2, 1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(2 * f, 4 * f, 4, 2, 1),
            nn.LeakyReLU(0.2),
            nn.Flatten(),
            nn.Linear(4 * f * (size // 8) ** 2, 1),
        )
        for m in self.modules():  # DCGAN's init, which Context Encoders uses: N(0, 0.02), zero bias
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.normal_(m.weight, 0.0, 0.02)
                nn.init.zeros_(m.bias)

    def forward(self, hole: torch.Tensor) -> torch.Tensor:
        return self.net(hole).squeeze(1)


def inference_gap(model: Inpainter, x: torch.Tensor, hole: slice, passes: int = 8) -> dict[str, torch.Tensor]:
    """What switching to inference mode changes, measured on copies (no running statistic moves).

    For eval mode and for training mode (batch norm on this batch's statistics, fresh dropout masks,
    `passes` passes averaged): the hole's output, its logit (the sigmoid's input) and the mean output
    of every hidden ReLU. `train_mean_logit` is the sigmoid of the average training-mode logit: the
    fill without the part that the sigmoid's curvature adds.
    """
    import copy

    results: dict[str, torch.Tensor] = {}
    for mode in ("eval", "train"):
        twin = copy.deepcopy(model).train(mode == "train")
        seen: dict[str, list[torch.Tensor]] = {"logit": []}
        relus = [m for m in twin.modules() if isinstance(m, nn.ReLU)]
        for i, relu in enumerate(relus):
            relu.register_forward_hook(lambda m, a, o, i=i: seen.setdefault(i, []).append(o.mean()))  # noqa: B023 - runs in this iteration
        twin.out[-1].register_forward_hook(lambda m, a, o: seen["logit"].append(a[0][..., hole, hole]))  # noqa: B023 - likewise
        with torch.no_grad():
            fills = [twin(x)[..., hole, hole] for _ in range(passes if mode == "train" else 1)]
        results[mode] = torch.stack(fills).mean(0)
        results[f"logit_{mode}"] = torch.stack(seen["logit"]).mean(0)
        results[f"relu_{mode}"] = torch.stack([torch.stack(seen[i]).mean() for i in range(len(relus))])
    results["train_mean_logit"] = torch.sigmoid(results["logit_train"])
    return results


def recalibrated(model: Inpainter, batches: list[torch.Tensor]) -> Inpainter:
    """A copy whose batch-norm running statistics are recomputed at the final weights as an exact
    average over `batches` (PyTorch's momentum=None), instead of Keras' lagging 0.99 moving average."""
    import copy

    twin = copy.deepcopy(model)
    norms = [m for m in twin.modules() if isinstance(m, nn.BatchNorm2d)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    twin.train()
    with torch.no_grad():
        for x in batches:
            twin(x)
    return twin.eval()
