"""tiny_hand: a tiny 2.5D hand-pose network on the principles of Chidananda et al. (arXiv 1909.05897) and its
patent (US11775836B2), and the ablations that test its design choices.

The paper's exact layer list is not public. What we take from it: an encoder of three tiers of unit blocks,
each tier more complex than the one before, a light decoder to the keypoint output, a visibility decoder trained
with BCE (here :class:`~architectures.hand_pose.AuxHeads`), auxiliary tasks in training only, and the budget
(3% of MobileNetV2's FLOPs, 2% of its parameters, under 35 MFLOPs, under 300 KB at fp32). Everything else is
ours and is described in :func:`tiny_hand`'s docstring.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch.nn.functional as F
from torch import Tensor, nn

from architectures.hand_pose import HandPoseNet, KeypointNet, conv_bn, init_weights
from effbench.registry import register_model


@dataclass(frozen=True)
class TinyHandConfig:
    """The knobs the ablations turn. Channels are per tier; the decoder works at tier 1's width."""

    channels: tuple[int, int, int] = (16, 32, 48)  # tier 1 (1/4), tier 2 (1/8), tier 3 (1/16)
    stem_channels: int = 8
    early_stride: int = 4  # 4: the stem reaches 1/4 before tier 1; 2: tier 1 runs at 1/2 and ends with a stride 2
    dilations: tuple[int, int] = (2, 2)  # of tier 2's and tier 3's 3x3 convs; (1, 1) for no dilation
    tier3_units: int = 1
    refine: bool = False  # a depthwise-separable 3x3 after the last skip


class Tier1Unit(nn.Module):
    """Simplest unit: depthwise-separable 3x3 (depthwise 3x3, pointwise 1x1), identity skip."""

    def __init__(self, channels: int):
        super().__init__()
        self.dw = conv_bn(channels, channels, 3, groups=channels)
        self.pw = conv_bn(channels, channels, 1, act=False)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(x + self.pw(self.dw(x)))


class Tier2Unit(nn.Module):
    """Entry unit of tier 2: dense 2x2 stride-2 down-projection, then a dilated depthwise-separable 3x3 with a skip."""

    def __init__(self, cin: int, cout: int, dilation: int):
        super().__init__()
        self.down = conv_bn(cin, cout, 2, stride=2)
        self.dw = conv_bn(cout, cout, 3, dilation=dilation, groups=cout)
        self.pw = conv_bn(cout, cout, 1, act=False)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        x = self.down(x)
        return self.act(x + self.pw(self.dw(x)))


class Tier3Unit(nn.Module):
    """Most complex unit: bottleneck 1x1 reduce, dense dilated 3x3, 1x1 expand, identity skip."""

    def __init__(self, channels: int, dilation: int):
        super().__init__()
        mid = channels // 2
        self.reduce = conv_bn(channels, mid, 1)
        self.conv = conv_bn(mid, mid, 3, dilation=dilation)
        self.expand = conv_bn(mid, channels, 1, act=False)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(x + self.expand(self.conv(self.reduce(x))))


class TinyHandEncoder(nn.Module):
    """Stem to 1/4, then tier 1 (1/4), tier 2 (1/8), tier 3 (1/16); returns the three tiers' outputs."""

    def __init__(self, cfg: TinyHandConfig):
        super().__init__()
        c1, c2, c3 = cfg.channels
        s = cfg.stem_channels
        if cfg.early_stride == 4:
            self.stem = conv_bn(1, c1, 4, stride=4)
            self.tier1 = Tier1Unit(c1)
        elif cfg.early_stride == 2:
            self.stem = conv_bn(1, s, 3, stride=2)
            self.tier1 = nn.Sequential(conv_bn(s, c1, 1), Tier1Unit(c1), conv_bn(c1, c1, 2, stride=2))
        else:
            raise ValueError(f"early_stride must be 2 or 4, got {cfg.early_stride}")
        self.tier2 = Tier2Unit(c1, c2, cfg.dilations[0])
        self.tier3 = nn.Sequential(
            conv_bn(c2, c3, 2, stride=2), *(Tier3Unit(c3, cfg.dilations[1]) for _ in range(cfg.tier3_units))
        )

    def forward(self, x: Tensor) -> list[Tensor]:
        f1 = self.tier1(self.stem(x))
        f2 = self.tier2(f1)
        return [f1, f2, self.tier3(f2)]


class TinyHandDecoder(nn.Module):
    """Project the deeper map, upsample bilinearly to the skip's size, add; twice, then one 3x3 refinement."""

    def __init__(self, cfg: TinyHandConfig):
        super().__init__()
        c1, c2, c3 = cfg.channels
        self.proj3 = conv_bn(c3, c2, 1, act=False)
        self.proj2 = conv_bn(c2, c1, 1, act=False)
        self.act = nn.ReLU(inplace=True)
        self.refine = Tier1Unit(c1) if cfg.refine else nn.Identity()

    def forward(self, feats: list[Tensor]) -> Tensor:
        f1, f2, f3 = feats
        x = f2 + F.interpolate(self.proj3(f3), size=f2.shape[-2:], mode="bilinear", align_corners=False)
        x = f1 + F.interpolate(self.proj2(x), size=f1.shape[-2:], mode="bilinear", align_corners=False)
        return self.refine(self.act(x))


def _create_tiny_hand(cfg: TinyHandConfig = TinyHandConfig(), **kwargs) -> HandPoseNet:
    encoder, decoder = TinyHandEncoder(cfg), TinyHandDecoder(cfg)
    init_weights(encoder)
    init_weights(decoder)
    net = KeypointNet(encoder, decoder, cfg.channels[0], **kwargs)
    return HandPoseNet(net, encoder_channels=cfg.channels[2], decoder_channels=cfg.channels[0])


@register_model(params=20_504, macs=3_183_360)
def tiny_hand(**kwargs) -> HandPoseNet:
    """tiny_hand."""
    return _create_tiny_hand(**kwargs)
