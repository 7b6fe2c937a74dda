"""The interface every hand-pose model shares: depth normalisation, integral-regression keypoint head, auxiliary heads.

A model is two modules that share their weights:

* :class:`KeypointNet`, the *deployable* form: depth normalisation, encoder, decoder, a 1x1 heatmap conv and a
  soft-argmax. ``forward(depth) -> {"keypoints": (B, K, 2) px, "heatmaps": (B, K, H/s, W/s) logits}`` (``s`` the heatmap
  stride, 4 unless the architecture says otherwise). This is what
  the profiler counts and the gate checks.
* :class:`HandPoseNet`, the *training* form: the same :class:`KeypointNet` plus :class:`AuxHeads` (hand mask,
  per-keypoint visibility, keypose, handedness). ``deployable()`` returns its ``net`` attribute, the very same
  object, so the deployable form shares every weight and holds no auxiliary parameter.

An architecture supplies an encoder (``x -> list of feature maps``, shallow to deep; the last one feeds the
auxiliary classifiers) and a decoder (``list of feature maps -> one map at 1/stride of the input``).

Why integral regression (soft-argmax) for every model: keypoints come out with sub-pixel precision from a 1/4
or 1/8 resolution map (an argmax would quantise them to 4 px), training needs one L1 loss, and the decode is part of
the counted, deployed graph.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from effbench.data.skeleton import NUM_KEYPOINTS, NUM_KEYPOSES

#: The heatmaps' default stride: 1/4 of the input resolution.
HEATMAP_STRIDE = 4


class DepthNorm(nn.Module):
    """Fixed affine normalisation of a depth frame in millimetres: ``(min(depth, max_mm) - center) / scale``.

    A fixed affine (two elementwise ops, counted) rather than a per-frame statistic: a robust per-frame statistic
    (a median over valid pixels) costs a sort, and the first convolution's BatchNorm adapts to whatever range the
    data has. Holes (0 mm) map to ``-center / scale``, a value no surface in front of the camera takes, so the
    network can tell them apart.

    Args:
        center_mm: Depth mapped to 0 (about where an egocentric camera sees a hand).
        scale_mm: Depth range mapped to 1.
        max_mm: Depth beyond this reads as this (one more elementwise op); None: no clamp. Hands are within arm's
            reach, so a clamp makes the background beyond it one plane instead of a range four times the hand's.
    """

    def __init__(self, center_mm: float = 500.0, scale_mm: float = 250.0, max_mm: float | None = None):
        super().__init__()
        self.center_mm = float(center_mm)
        self.scale_mm = float(scale_mm)
        self.max_mm = None if max_mm is None else float(max_mm)

    def forward(self, depth: Tensor) -> Tensor:
        if self.max_mm is not None:
            depth = depth.clamp(max=self.max_mm)
        return (depth - self.center_mm) * (1.0 / self.scale_mm)

    def extra_repr(self) -> str:
        clamp = "" if self.max_mm is None else f", max_mm={self.max_mm}"
        return f"center_mm={self.center_mm}, scale_mm={self.scale_mm}{clamp}"


class SoftArgmax2d(nn.Module):
    """Integral regression: softmax over each heatmap, then the expected pixel position.

    Cell ``(i, j)`` of a map at ``1/stride`` resolution stands for the input pixel ``(stride * (j + 0.5) - 0.5,
    stride * (i + 0.5) - 0.5)`` (the centre of the block of pixels it covers, pixel centres at integers). The
    expectation is one matmul with a ``(h*w, 2)`` grid, cached per size, dtype and device in a plain attribute
    (not a buffer, so it is in no state_dict).

    Args:
        stride: Input pixels per heatmap cell.
    """

    def __init__(self, stride: int = HEATMAP_STRIDE):
        super().__init__()
        self.stride = stride
        self._grids: dict[tuple, Tensor] = {}

    def grid(self, h: int, w: int, like: Tensor) -> Tensor:
        """The ``(h*w, 2)`` pixel coordinates (x, y) of the cells of an ``h x w`` map."""
        key = (h, w, like.dtype, like.device)
        if key not in self._grids:
            ys = torch.arange(h, dtype=like.dtype, device=like.device) * self.stride + (self.stride - 1) / 2
            xs = torch.arange(w, dtype=like.dtype, device=like.device) * self.stride + (self.stride - 1) / 2
            gy, gx = torch.meshgrid(ys, xs, indexing="ij")
            self._grids[key] = torch.stack((gx.reshape(-1), gy.reshape(-1)), dim=1)
        return self._grids[key]

    def forward(self, logits: Tensor) -> Tensor:
        """Map ``(B, K, h, w)`` logits to ``(B, K, 2)`` keypoints in input pixels."""
        h, w = logits.shape[-2:]
        probs = logits.flatten(2).softmax(-1)
        return probs @ self.grid(h, w, logits)


class KeypointNet(nn.Module):
    """The deployable form: normalisation, encoder, decoder, 1x1 heatmap conv, soft-argmax.

    Args:
        encoder: ``x (B, 1, H, W) -> list of feature maps``, shallow to deep.
        decoder: ``list of feature maps -> (B, decoder_channels, H/stride, W/stride)``.
        decoder_channels: Channels of the decoder's output.
        num_keypoints: K.
        norm: Depth normalisation; :class:`DepthNorm` with its defaults if None.
        stride: Input pixels per cell of the decoder's output (and so of the heatmaps).
    """

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        decoder_channels: int,
        num_keypoints: int = NUM_KEYPOINTS,
        norm: nn.Module | None = None,
        stride: int = HEATMAP_STRIDE,
    ):
        super().__init__()
        self.norm = norm if norm is not None else DepthNorm()
        self.encoder = encoder
        self.decoder = decoder
        self.heatmap = nn.Conv2d(decoder_channels, num_keypoints, 1)
        self.softargmax = SoftArgmax2d(stride)
        # Small logits at start: near-uniform softmax, keypoints start at the image centre and every cell gets
        # gradient (a sharp random map would starve all but a few cells).
        nn.init.normal_(self.heatmap.weight, 0.0, 0.01)
        nn.init.zeros_(self.heatmap.bias)

    def features(self, depth: Tensor) -> tuple[list[Tensor], Tensor]:
        """Encoder features (shallow to deep) and the decoder's output."""
        feats = self.encoder(self.norm(depth))
        return feats, self.decoder(feats)

    def head(self, decoded: Tensor) -> dict[str, Tensor]:
        """Heatmap logits and soft-argmax keypoints from the decoder's output."""
        heatmaps = self.heatmap(decoded)
        return {"keypoints": self.softargmax(heatmaps), "heatmaps": heatmaps}

    def forward(self, depth: Tensor) -> dict[str, Tensor]:
        return self.head(self.features(depth)[1])


class AuxHeads(nn.Module):
    """Light auxiliary heads, used in training only.

    ``seg`` is a 1x1 conv on the decoder's output (mask logits at the decoder's resolution, so the mask
    shapes the same features the heatmaps are read from). ``visibility`` (the patent's visibility decoder,
    trained with BCE), ``keypose`` and ``handedness`` are linear layers on pooled deepest encoder features: light,
    so the auxiliary tasks must be solved by the shared encoder rather than by their heads.

    The pooling is what lets them learn. A hand covers ~5% of the frame (a few cells of the deepest map), so a
    global mean is dominated by background, forearm and objects, and linear classifiers on it stayed at chance
    (ln 9, ln 2) in 600-step runs. Each classifier therefore reads three poolings of the deepest map, concatenated:
    the mean weighted by the predicted hand mask (``sigmoid(seg)``, area-resized to the map, detached so that the
    classifiers do not bend the mask), the global max (the strongest response, wherever the hand is), and the
    global mean (context; for frames without a hand).

    Args:
        encoder_channels: Channels of the deepest encoder feature map.
        decoder_channels: Channels of the decoder's output.
        num_keypoints: K.
    """

    def __init__(self, encoder_channels: int, decoder_channels: int, num_keypoints: int = NUM_KEYPOINTS):
        super().__init__()
        pooled = 3 * encoder_channels
        self.seg = nn.Conv2d(decoder_channels, 1, 1)
        self.visibility = nn.Linear(pooled, num_keypoints)
        self.keypose = nn.Linear(pooled, NUM_KEYPOSES)
        self.handedness = nn.Linear(pooled, 1)

    @staticmethod
    def pool(deepest: Tensor, seg: Tensor) -> Tensor:
        """(B, C, h, w) features and (B, 1, H', W') mask logits -> (B, 3C): mask-weighted mean, max, mean."""
        weight = F.adaptive_avg_pool2d(torch.sigmoid(seg.detach()), deepest.shape[-2:])
        masked = (deepest * weight).sum((2, 3)) / weight.sum((2, 3)).clamp_min(1e-3)
        return torch.cat([masked, deepest.amax((2, 3)), deepest.mean((2, 3))], 1)

    def forward(self, deepest: Tensor, decoded: Tensor) -> dict[str, Tensor]:
        seg = self.seg(decoded)
        pooled = self.pool(deepest, seg)
        return {
            "seg": seg,
            "visibility": self.visibility(pooled),
            "keypose": self.keypose(pooled),
            "handedness": self.handedness(pooled),
        }


class HandPoseNet(nn.Module):
    """The training form: a :class:`KeypointNet` plus :class:`AuxHeads`.

    ``forward(depth)`` returns ``keypoints`` (B, K, 2) px, ``heatmaps`` (B, K, H/s, W/s), ``seg`` (B, 1, H/s, W/s),
    ``visibility`` (B, K), ``keypose`` (B, 9) and ``handedness`` (B, 1), all logits but the keypoints.

    Args:
        net: The deployable network.
        encoder_channels: Channels of the deepest encoder feature map (the auxiliary classifiers' input).
        decoder_channels: Channels of the decoder's output (the mask head's input).
    """

    def __init__(self, net: KeypointNet, encoder_channels: int, decoder_channels: int):
        super().__init__()
        self.net = net
        self.aux = AuxHeads(encoder_channels, decoder_channels, net.heatmap.out_channels)

    @property
    def num_keypoints(self) -> int:
        """K, the number of keypoints predicted."""
        return self.net.heatmap.out_channels

    def forward(self, depth: Tensor) -> dict[str, Tensor]:
        feats, decoded = self.net.features(depth)
        out = self.net.head(decoded)
        out.update(self.aux(feats[-1], decoded))
        return out

    def deployable(self) -> KeypointNet:
        """The inference form (backbone + keypoint head): the same module object, so weights are shared."""
        return self.net


def conv_bn(
    cin: int, cout: int, kernel: int = 3, stride: int = 1, dilation: int = 1, groups: int = 1, act: bool = True
) -> nn.Sequential:
    """Convolution (no bias, 'same' padding for odd kernels), BatchNorm, optional ReLU."""
    padding = dilation * (kernel - 1) // 2 if kernel % 2 else 0
    layers: list[nn.Module] = [
        nn.Conv2d(cin, cout, kernel, stride, padding, dilation=dilation, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
    ]
    if act:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def init_weights(module: nn.Module) -> None:
    """He-normal convolutions (fan out, as torchvision's MobileNetV2), BatchNorm to identity, zero biases."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.01)
            nn.init.zeros_(m.bias)
