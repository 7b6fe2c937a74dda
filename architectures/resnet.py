"""ResNet-18 (He et al. 2016, arXiv 1512.03385), written here because torchvision does not import beside the CPU
torch build this project pins.

Layer list follows the paper's Table 1 and torchvision's implementation (BasicBlock, 1x1 projection shortcuts
where the shape changes, stride on the block's first 3x3), so ``resnet18_imagenet`` reproduces torchvision's
published figures: 11,689,512 parameters and 1.814 G MACs at 3 x 224 x 224. A test checks both.
"""

from __future__ import annotations

from torch import Tensor, nn

from effbench.registry import register_model


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with BatchNorm, a shortcut (1x1 projection when the shape changes), ReLU after the add."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    """ResNet with BasicBlocks for ImageNet classification.

    Args:
        layers: Blocks per stage; (2, 2, 2, 2) is ResNet-18.
        num_classes: Classifier outputs.
        in_channels: 3 for RGB.
    """

    def __init__(self, layers: tuple[int, ...] = (2, 2, 2, 2), num_classes: int = 1000, in_channels: int = 3):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        stages: list[nn.Module] = []
        cin = 64
        for i, n in enumerate(layers):
            cout = 64 * 2**i
            first_stride = 1 if i == 0 else 2  # layer1 keeps the stem's resolution; later stages halve it
            blocks = [BasicBlock(cin if j == 0 else cout, cout, first_stride if j == 0 else 1) for j in range(n)]
            stages.append(nn.Sequential(*blocks))
            cin = cout
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.avgpool(x).flatten(1))


@register_model(
    input_shape=(1, 3, 224, 224), params=11_689_512, macs=1_814_073_344, tags=("reference",), profile_only=True
)
def resnet18_imagenet(**kwargs) -> ResNet:
    """ResNet-18 for 1000-class ImageNet at 224x224: the published reference for counter checks."""
    return ResNet((2, 2, 2, 2), **kwargs)
