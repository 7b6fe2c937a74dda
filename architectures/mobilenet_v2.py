"""MobileNetV2 (Sandler et al. 2018, arXiv 1801.04381), written here because torchvision does not import beside
the CPU torch build this project pins.

Layer list, width multiplier and channel rounding follow the paper and torchvision's implementation, so that
``mobilenet_v2_100_imagenet`` reproduces torchvision's published figures (3,504,872 parameters, 300.8 M MACs at
3 x 224 x 224); a test checks both.
"""

from __future__ import annotations

from torch import Tensor, nn

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


@register_model(input_shape=(1, 3, 224, 224), params=3_504_872, macs=300_774_272, tags=("reference",))
def mobilenet_v2_100_imagenet(**kwargs) -> MobileNetV2Classifier:
    """MobileNetV2 1.0 for 1000-class ImageNet at 224x224: the published reference for counter checks."""
    return MobileNetV2Classifier(width=1.0, **kwargs)
