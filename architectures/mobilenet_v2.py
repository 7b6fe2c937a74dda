"""MobileNetV2 (Sandler et al. 2018, arXiv 1801.04381), written here because torchvision does not import beside
the CPU torch build this project pins.

Layer list, width multiplier and channel rounding follow the paper and torchvision's implementation, so that
``mobilenet_v2_100_imagenet`` reproduces torchvision's published figures (3,504,872 parameters, 300.8 M MACs at
3 x 224 x 224); a test checks both.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from architectures.hand_pose import HandPoseNet, KeypointNet
from effbench.registry import register_model

# (expansion t, output channels c, repeats n, first stride s), from Table 2 of the paper.
INVERTED_RESIDUAL_SETTING: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round channels to a multiple of ``divisor``, never more than 10% below ``value`` (the paper's rounding)."""
    min_value = min_value or divisor
    new = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new < 0.9 * value:
        new += divisor
    return new


class ConvBNReLU6(nn.Sequential):
    """Convolution (no bias), BatchNorm, ReLU6 (or no activation)."""

    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: int = 1, groups: int = 1, act: bool = True):
        layers: list[nn.Module] = [
            nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
        ]
        if act:
            layers.append(nn.ReLU6(inplace=True))
        super().__init__(*layers)


class InvertedResidual(nn.Module):
    """Expand 1x1, depthwise 3x3, project 1x1 (linear); residual when stride 1 and shapes match."""

    def __init__(self, cin: int, cout: int, stride: int, expand_ratio: int):
        super().__init__()
        hidden = int(round(cin * expand_ratio))
        self.use_res = stride == 1 and cin == cout
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(ConvBNReLU6(cin, hidden, kernel=1))
        layers += [ConvBNReLU6(hidden, hidden, stride=stride, groups=hidden), ConvBNReLU6(hidden, cout, 1, act=False)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv(x) if self.use_res else self.conv(x)


class MobileNetV2Backbone(nn.Module):
    """The MobileNetV2 feature extractor up to the final 1x1 convolution (output stride 32).

    Args:
        width: Width multiplier applied to every layer (the last layer keeps 1280 channels when width <= 1).
        in_channels: 3 for RGB, 1 for a depth frame.
        last_channels: Output channels of the final 1x1 conv; None for the paper's 1280 x max(1, width).
    """

    def __init__(self, width: float = 1.0, in_channels: int = 3, last_channels: int | None = None):
        super().__init__()
        cin = make_divisible(32 * width)
        self.last_channels = last_channels or make_divisible(1280 * max(1.0, width))
        layers: list[nn.Module] = [ConvBNReLU6(in_channels, cin, stride=2)]
        #: Output channels after each inverted-residual stage (for decoders that tap intermediate features).
        self.stage_channels: list[int] = []
        for t, c, n, s in INVERTED_RESIDUAL_SETTING:
            cout = make_divisible(c * width)
            for i in range(n):
                layers.append(InvertedResidual(cin, cout, s if i == 0 else 1, t))
                cin = cout
            self.stage_channels.append(cout)
        layers.append(ConvBNReLU6(cin, self.last_channels, kernel=1))
        self.features = nn.Sequential(*layers)
        _init_weights(self)

    def forward(self, x: Tensor) -> Tensor:
        return self.features(x)


class MobileNetV2Classifier(nn.Module):
    """MobileNetV2 for ImageNet classification: backbone, global average pool, dropout, linear."""

    def __init__(self, width: float = 1.0, num_classes: int = 1000, in_channels: int = 3):
        super().__init__()
        self.backbone = MobileNetV2Backbone(width, in_channels)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(self.backbone.last_channels, num_classes))
        nn.init.normal_(self.classifier[1].weight, 0, 0.01)
        nn.init.zeros_(self.classifier[1].bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.backbone(x).mean((2, 3)))


def _init_weights(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


@register_model(
    input_shape=(1, 3, 224, 224), params=3_504_872, macs=300_774_272, tags=("reference",), profile_only=True
)
def mobilenet_v2_100_imagenet(**kwargs) -> MobileNetV2Classifier:
    """MobileNetV2 1.0 for 1000-class ImageNet at 224x224: the published reference for counter checks."""
    return MobileNetV2Classifier(width=1.0, **kwargs)


# --- Keypoint variants: 1-channel MobileNetV2 backbone + a light FPN-style keypoint head ------------------------

#: Indices into ``MobileNetV2Backbone.features`` whose outputs the keypoint head taps: the last block at output
#: stride 4 (stage 2), 8 (stage 3), 16 (stage 5) and the final 1x1 conv at stride 32.
_TAPS: tuple[int, ...] = (3, 6, 13, 18)


class MobileNetV2Encoder(nn.Module):
    """A 1-channel :class:`MobileNetV2Backbone` run layer by layer, returning the stride 4, 8, 16 and 32 features."""

    def __init__(self, width: float):
        super().__init__()
        self.backbone = MobileNetV2Backbone(width, in_channels=1)
        s = self.backbone.stage_channels
        #: Channels of the tapped features, shallow to deep.
        self.channels: tuple[int, ...] = (s[1], s[2], s[4], self.backbone.last_channels)

    def forward(self, x: Tensor) -> list[Tensor]:
        feats = []
        for i, layer in enumerate(self.backbone.features):
            x = layer(x)
            if i in _TAPS:
                feats.append(x)
        return feats


class MobileNetV2KeypointDecoder(nn.Module):
    """Light FPN-style head from strides 32/16/8/4 back to 1/4 resolution.

    Each step: 1x1 lateral projection of the tapped feature (BN, no activation), bilinear upsampling of the
    coarser map to its size, add, ReLU. ``width`` channels down to stride 8, where a depthwise-separable 3x3
    refines; then a 1x1 to ``width // 2`` channels, upsampled to stride 4 and added to the stride-4 lateral, and a
    second depthwise-separable 3x3. Bilinear upsampling + 1x1/depthwise-separable stages keep the head's MACs a
    small fraction of the backbone's (see the builders' docstrings for the measured share).
    """

    def __init__(self, in_channels: tuple[int, ...], width: int = 64):
        super().__init__()
        c4, c8, c16, c32 = in_channels
        half = width // 2
        self.lat32 = _conv_bn(c32, width, 1, act=False)
        self.lat16 = _conv_bn(c16, width, 1, act=False)
        self.lat8 = _conv_bn(c8, width, 1, act=False)
        self.refine8 = nn.Sequential(_conv_bn(width, width, 3, groups=width), _conv_bn(width, half, 1, act=False))
        self.lat4 = _conv_bn(c4, half, 1, act=False)
        self.refine4 = nn.Sequential(_conv_bn(half, half, 3, groups=half), _conv_bn(half, half, 1))
        self.act = nn.ReLU(inplace=True)
        self.out_channels = half

    @staticmethod
    def _up(x: Tensor, like: Tensor) -> Tensor:
        return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)

    def forward(self, feats: list[Tensor]) -> Tensor:
        f4, f8, f16, f32 = feats
        x = self.act(self.lat16(f16) + self._up(self.lat32(f32), f16))
        x = self.act(self.lat8(f8) + self._up(x, f8))
        x = self.refine8(x)
        x = self.act(self.lat4(f4) + self._up(x, f4))
        return self.refine4(x)


def _conv_bn(cin: int, cout: int, kernel: int, groups: int = 1, act: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, kernel, 1, kernel // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    if act:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def _create_mobilenet_v2(width: float, head_width: int | None = None, **kwargs) -> HandPoseNet:
    encoder = MobileNetV2Encoder(width)
    # The head narrows with the backbone (64 channels at width 1.0) so that it stays a small share of it.
    head_width = head_width or make_divisible(64 * width)
    decoder = MobileNetV2KeypointDecoder(encoder.channels, head_width)
    _init_weights(decoder)
    net = KeypointNet(encoder, decoder, decoder.out_channels, **kwargs)
    return HandPoseNet(net, encoder_channels=encoder.channels[-1], decoder_channels=decoder.out_channels)


@register_model(params=2_319_144, macs=122_819_520)
def mobilenet_v2_100(**kwargs) -> HandPoseNet:
    """MobileNetV2 1.0 keypoint baseline, the embedded suite's reference: head 5.5% of the backbone's MACs."""
    return _create_mobilenet_v2(1.0, **kwargs)


@register_model(params=1_424_768, macs=84_385_920)
def mobilenet_v2_075(**kwargs) -> HandPoseNet:
    """MobileNetV2 0.75 keypoint baseline: head 5.3% of the backbone's MACs."""
    return _create_mobilenet_v2(0.75, **kwargs)


@register_model(params=732_376, macs=38_918_400)
def mobilenet_v2_050(**kwargs) -> HandPoseNet:
    """MobileNetV2 0.5 keypoint baseline: head 6.3% of the backbone's MACs."""
    return _create_mobilenet_v2(0.5, **kwargs)


@register_model(params=428_956, macs=23_035_360)
def mobilenet_v2_035(**kwargs) -> HandPoseNet:
    """MobileNetV2 0.35 keypoint baseline: head 6.9% of the backbone's MACs."""
    return _create_mobilenet_v2(0.35, **kwargs)
