"""MLPerf Tiny's four reference models (mlcommons/tiny), in PyTorch, registered profile-only.

Each model follows its definition in the mlcommons/tiny repository; its docstring lists the layers followed, and
``tests/test_tinyml.py`` derives the registered parameter and MAC counts by hand from those lists. There is no
data set for these tasks here, so they are profiled, reported and gated, never trained.

Translating the Keras references:

* Keras convolutions and dense layers have a bias by default, so these do too (redundant before a BatchNorm, but
  part of the reference's parameter count).
* Keras' BatchNormalization holds 4 numbers per channel, 2 of them non-trainable statistics; PyTorch's holds 2
  parameters and 2 buffers. The parameter counts here are therefore Keras' *trainable* counts.
* ``padding='same'`` with an odd total puts the extra row/column at the bottom/right; PyTorch pads symmetrically.
  The output sizes and the MACs (counted per output element and kernel tap, padded taps included) are the same;
  at stride 2 the sampling grid shifts by one pixel.
* Dropout is the identity at inference and is left out. Where the reference's last Dense layer has a softmax,
  the deployed graph ends with it.
"""

from __future__ import annotations

from torch import Tensor, nn

from effbench.registry import register_model

#: Tags of every model in this file; the ``tinyml`` suite lists them.
TAGS = ("mlperf_tiny",)


def conv_bn_relu(
    cin: int, cout: int, kernel: int | tuple[int, int], stride: int = 1, padding: int | tuple[int, int] = 0,
    groups: int = 1, relu: bool = True,
) -> nn.Sequential:  # fmt: skip
    """Convolution with a bias (Keras' default), BatchNorm, and ReLU unless ``relu`` is False."""
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, kernel, stride, padding, groups=groups), nn.BatchNorm2d(cout)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class ResidualStack(nn.Module):
    """Two 3x3 convolutions with BatchNorm; the shortcut is the input, or a strided 1x1 convolution (bias, no
    BatchNorm) when the width changes; ReLU after the add."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.block = nn.Sequential(conv_bn_relu(cin, cout, 3, stride, 1), conv_bn_relu(cout, cout, 3, 1, 1, relu=False))
        self.shortcut = nn.Identity() if cin == cout else nn.Conv2d(cin, cout, 1, stride)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.block(x) + self.shortcut(x))


class ResNet8(nn.Module):
    """ResNet-8 for CIFAR-10 (image classification), after ``Resnet8v1EEMBC`` in
    ``benchmark/training_torch/image_classification/utils/model.py`` (the Keras ``resnet_v1_eembc`` in
    ``benchmark/training/image_classification/keras_model.py`` has the same layers).

    Layers, on a 3 x 32 x 32 image:

    * stem: conv 3x3 3->16 + BN + ReLU (32 x 32);
    * stack 1: conv 3x3 16->16 + BN + ReLU, conv 3x3 16->16 + BN; identity shortcut; add; ReLU (32 x 32);
    * stack 2: conv 3x3 stride 2 16->32 + BN + ReLU, conv 3x3 32->32 + BN; shortcut conv 1x1 stride 2 16->32;
      add; ReLU (16 x 16);
    * stack 3: the same, 32->64 (8 x 8);
    * global average pool, linear 64->10 (logits: the PyTorch reference has no softmax).
    """

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.stem = conv_bn_relu(3, 16, 3, 1, 1)
        self.stacks = nn.Sequential(ResidualStack(16, 16, 1), ResidualStack(16, 32, 2), ResidualStack(32, 64, 2))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.pool(self.stacks(self.stem(x))).flatten(1))


class DSCNN(nn.Module):
    """DS-CNN for keyword spotting on Speech Commands, after the ``ds_cnn`` branch of
    ``v0.1/training/keyword_spotting/keras_model.py``.

    Layers, on 1 x 49 x 10 MFCCs (49 frames of 10 coefficients: 1 s at 16 kHz, 30 ms windows every 20 ms):

    * conv 10x4 stride 2 1->64 + BN + ReLU (25 x 5; PyTorch padding (5, 1) gives Keras' 'same' output size);
    * 4 x [depthwise 3x3 64 + BN + ReLU, pointwise 1x1 64->64 + BN + ReLU] (25 x 5);
    * average pool 25x5, linear 64->12, softmax.
    """

    def __init__(self, num_classes: int = 12, filters: int = 64, blocks: int = 4):
        super().__init__()
        self.stem = conv_bn_relu(1, filters, (10, 4), 2, (5, 1))
        self.blocks = nn.Sequential(
            *(
                nn.Sequential(
                    conv_bn_relu(filters, filters, 3, 1, 1, groups=filters), conv_bn_relu(filters, filters, 1)
                )
                for _ in range(blocks)
            )
        )
        self.pool = nn.AvgPool2d((25, 5))
        self.fc = nn.Linear(filters, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.pool(self.blocks(self.stem(x))).flatten(1)).softmax(-1)


#: MobileNetV1 0.25's depthwise-separable blocks: (input channels, output channels, depthwise stride).
MOBILENET_V1_025_BLOCKS: tuple[tuple[int, int, int], ...] = (
    (8, 16, 1), (16, 32, 2), (32, 32, 1), (32, 64, 2), (64, 64, 1), (64, 128, 2),
    (128, 128, 1), (128, 128, 1), (128, 128, 1), (128, 128, 1), (128, 128, 1),
    (128, 256, 2), (256, 256, 1),
)  # fmt: skip


class MobileNetV1(nn.Module):
    """MobileNetV1 width 0.25 for visual wake words (person / no person), after ``mobilenet_v1()`` in
    ``v0.1/benchmarks/visual_wake_words/vww_model.py``.

    Layers, on a 3 x 96 x 96 image:

    * conv 3x3 stride 2 3->8 + BN + ReLU (48 x 48);
    * 13 depthwise-separable blocks, each depthwise 3x3 + BN + ReLU then pointwise 1x1 + BN + ReLU, as
      (in, out, stride): (8, 16, 1) (16, 32, 2) (32, 32, 1) (32, 64, 2) (64, 64, 1) (64, 128, 2), 5 x
      (128, 128, 1), (128, 256, 2) (256, 256, 1) (3 x 3 at the end);
    * average pool 3x3, linear 256->2, softmax.
    """

    def __init__(self, num_classes: int = 2, blocks: tuple[tuple[int, int, int], ...] = MOBILENET_V1_025_BLOCKS):
        super().__init__()
        self.stem = conv_bn_relu(3, blocks[0][0], 3, 2, 1)
        self.blocks = nn.Sequential(
            *(
                nn.Sequential(conv_bn_relu(cin, cin, 3, stride, 1, groups=cin), conv_bn_relu(cin, cout, 1))
                for cin, cout, stride in blocks
            )
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(blocks[-1][1], num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.pool(self.blocks(self.stem(x))).flatten(1)).softmax(-1)


class FCAutoencoder(nn.Module):
    """The fully connected autoencoder for anomaly detection (ToyADMOS), after ``get_model()`` in
    ``v0.1/benchmarks/anomaly_detection/keras_model.py``.

    Layers, on 640 inputs (5 frames x 128 log-mel bands): dense 640->128, 3 x dense 128->128, dense 128->8
    (the bottleneck), dense 8->128, 3 x dense 128->128, each + BN + ReLU; then dense 128->640 (the
    reconstruction; the anomaly score is its error).
    """

    def __init__(self, inputs: int = 640, width: int = 128, bottleneck: int = 8):
        super().__init__()
        sizes = [inputs, width, width, width, width, bottleneck, width, width, width, width]
        layers: list[nn.Module] = []
        for cin, cout in zip(sizes, sizes[1:]):
            layers += [nn.Linear(cin, cout), nn.BatchNorm1d(cout), nn.ReLU(inplace=True)]
        self.hidden = nn.Sequential(*layers)
        self.out = nn.Linear(width, inputs)

    def forward(self, x: Tensor) -> Tensor:
        return self.out(self.hidden(x))


@register_model(input_shape=(1, 3, 32, 32), params=78_186, macs=12_501_632, tags=TAGS, profile_only=True)
def resnet8_cifar10(**kwargs) -> ResNet8:
    """MLPerf Tiny image classification: ResNet-8 on 32 x 32 CIFAR-10 images."""
    return ResNet8(**kwargs)


@register_model(input_shape=(1, 1, 49, 10), params=23_756, macs=2_656_768, tags=TAGS, profile_only=True)
def ds_cnn_kws(**kwargs) -> DSCNN:
    """MLPerf Tiny keyword spotting: DS-CNN on 49 x 10 MFCCs, 12 classes."""
    return DSCNN(**kwargs)


@register_model(input_shape=(1, 3, 96, 96), params=216_322, macs=7_489_664, tags=TAGS, profile_only=True)
def mobilenet_v1_025_vww(**kwargs) -> MobileNetV1:
    """MLPerf Tiny visual wake words: MobileNetV1 0.25 on 96 x 96 images, person / no person."""
    return MobileNetV1(**kwargs)


@register_model(input_shape=(1, 640), params=267_928, macs=264_192, tags=TAGS, profile_only=True)
def fc_autoencoder_ad(**kwargs) -> FCAutoencoder:
    """MLPerf Tiny anomaly detection: fully connected autoencoder on 640 log-mel features (ToyADMOS)."""
    return FCAutoencoder(**kwargs)
