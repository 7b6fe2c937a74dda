"""Two-stage hand-pose models: a locator finds the hand in the frame, a keypoint network reads a crop around it.

Why: in a whole 120 x 160 frame a hand at 200 mm spans most of the frame and one at 700 mm a few dozen pixels, so
a one-stage net spends most of its operations on background and must handle a 3.5x range of scales. A crop whose
side is a fixed 250 mm at the hand's distance shows every hand at the same size, the way depth hand trackers have
long done (DeepPrior, V2V-PoseNet), with a learned locator instead of a hand-set depth threshold: objects in front
of the hand would fool the threshold.

The deployable form (:class:`CropKeypointNet`) is one graph: locator, crop (one gather), keypoint
network, keypoints mapped back to frame pixels. Its output also carries what the losses need
(:mod:`effbench.crop`): ``crop``, and the locator's ``centre_logits``, ``hand_centre`` (px) and ``hand_z`` (mm).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from architectures.hand_pose import DepthNorm, HandPoseNet, KeypointNet, SoftArgmax2d, conv_bn, init_weights
from effbench.crop import clamp_to_frame, crop_frames, to_frame

#: Hands are within arm's reach: the locator clamps depth here (as the keypoint networks do).
MAX_DEPTH_MM = 1000.0


class Locator(nn.Module):
    """Frame -> the hand's centre (px) and distance (mm), by integral regression on a 1/8 map.

    A 4x4 stride-4 patch stem, a 2x2 stride-2 convolution to 1/8, another to 1/16 and residual depthwise-separable
    blocks there (the context: which surface is the hand), then back to 1/8 as the keypoint decoder does (the 1/16
    map projected, upsampled and added to the 1/8 map, a depthwise-separable 3x3) and a 1x1 conv to three maps: the
    centre's logits, the distance's own logits and a distance correction. The centre is the expectation of the pixel
    grid under the centre's softmax. The distance is the expectation of the nearest depth in each 8 x 8 block plus
    the correction, under a softmax of the centre's logits plus the distance's: the frame already says how far each
    surface is, the net says which blocks show the hand (not an occluder in front of it) and how far behind that
    surface the joints lie.

    Args:
        channels: Widths at 1/4, 1/8 and 1/16.
        dilations: One residual DS block at 1/16 per entry, at that dilation.
        block: The DS block's class (``block(channels, dilation)``).
    """

    stride = 8

    def __init__(self, channels: tuple[int, int, int], dilations: tuple[int, ...], block: type[nn.Module]):
        super().__init__()
        c0, c1, c2 = channels
        self.norm = DepthNorm(max_mm=MAX_DEPTH_MM)
        self.to8 = nn.Sequential(conv_bn(1, c0, 4, stride=4), conv_bn(c0, c1, 2, stride=2))
        self.to16 = nn.Sequential(conv_bn(c1, c2, 2, stride=2), *(block(c2, d) for d in dilations))
        self.proj = nn.Conv2d(c2, c1, 1)
        self.refine = nn.Sequential(conv_bn(c1, c1, 3, groups=c1), conv_bn(c1, c1, 1))
        self.head = nn.Conv2d(c1, 3, 1)
        self.softargmax = SoftArgmax2d(self.stride)
        init_weights(self)
        # Near-zero start: an almost uniform centre map (the frame's centre), the distance read where the centre is
        # and almost no correction. Not zero, so that the body below gets a gradient from the first step.
        nn.init.normal_(self.head.weight, std=1e-3)
        nn.init.zeros_(self.head.bias)

    def forward(self, depth: Tensor) -> dict[str, Tensor]:
        f8 = self.to8(self.norm(depth))
        up = F.interpolate(self.proj(self.to16(f8)), size=f8.shape[-2:], mode="bilinear", align_corners=False)
        y = self.head(self.refine(F.relu(f8 + up)))
        logits, z_logits, correction = y[:, :1], y[:, 1:2], y[:, 2:]
        h, w = logits.shape[-2:]
        p = logits.flatten(2).softmax(-1)  # (B, 1, h*w)
        centre = (p @ self.softargmax.grid(h, w, logits))[:, 0]
        # The distance's weights start as the centre's and learn to leave the blocks an occluder covers, whose
        # nearest depth is the occluder's: with the centre's weights, 7.8% of test hands were over 50 mm off.
        q = (logits + z_logits).flatten(2).softmax(-1)
        # Holes (0 mm) and the far background read as the clamp; the nearest surface of each block at 1/8.
        d = torch.where(depth > 0, depth, MAX_DEPTH_MM).clamp(max=MAX_DEPTH_MM)
        nearest = -F.max_pool2d(-d, self.stride)[..., :h, :w]
        z = (q * (nearest + 100.0 * correction).flatten(2)).sum(-1)[:, 0]
        return {"centre_logits": logits, "hand_centre": centre, "hand_z": z}


class CropKeypointNet(nn.Module):
    """The deployable two-stage form: locator, a crop of ``box_mm`` at the hand's distance resampled to
    ``size x size``, its depth made relative to that distance, the keypoint network on it, keypoints mapped back to
    the frame.

    The keypoint network reads depth relative to the crop's distance, in ``(-1, 1)`` for ``+-window_mm`` and clamped
    there: nearer (an occluder) reads -1, farther (the wall behind) and holes read 1 (its own normalisation must be
    the identity). So every hand reads the same depth values at every distance, as it has the same size in the
    crop; with absolute depth (the one-stage net's normalisation) the network had to learn each shape at every
    distance from 150 to 800 mm.

    In training mode the crop is jittered (centre by ``jitter[0]`` of its side, side by ``exp(jitter[1] N(0, 1))``) and
    detached: the keypoint network learns to tolerate the locator's errors, and no gradient flows through the crop.

    Args:
        locator: The first stage (:class:`Locator`).
        net: The second stage, a :class:`~architectures.hand_pose.KeypointNet` for ``size x size`` inputs.
        size: Side of the crop in pixels.
        box_mm: Side of the crop in millimetres at the hand's distance.
        focal_px: The camera's focal length in pixels (the data's camera: 140 px at 160 px width).
        jitter: Training-time jitter (centre, log side).
        window_mm: Half the depth window around the crop's distance.
    """

    def __init__(self, locator: Locator, net: KeypointNet, size: int, box_mm: float = 250.0,
                 focal_px: float = 140.0, jitter: tuple[float, float] = (0.05, 0.05), window_mm: float = 125.0):
        super().__init__()
        self.locator = locator
        self.net = net
        self.size = size
        self.box_mm = float(box_mm)
        self.focal_px = float(focal_px)
        self.jitter = tuple(float(j) for j in jitter)
        self.window_mm = float(window_mm)

    def extra_repr(self) -> str:
        return (f"size={self.size}, box_mm={self.box_mm}, focal_px={self.focal_px}, jitter={self.jitter}, "
                f"window_mm={self.window_mm}")

    @property
    def heatmap(self) -> nn.Conv2d:
        """The keypoint network's heatmap conv (its ``out_channels`` is the number of keypoints)."""
        return self.net.heatmap

    def crop_of(self, loc: dict[str, Tensor]) -> Tensor:
        """The ``(B, 4)`` crop (:mod:`effbench.crop`) around the located hand; jittered and detached in training."""
        centre, side = loc["hand_centre"].detach(), self.focal_px * self.box_mm / loc["hand_z"].detach().clamp_min(100)
        if self.training:
            noise = torch.randn(len(side), 3, dtype=side.dtype, device=side.device)
            centre = centre + self.jitter[0] * side[:, None] * noise[:, :2]
            side = side * torch.exp(self.jitter[1] * noise[:, 2])
        scale = side / self.size
        offset = centre - (side - scale)[:, None] / 2  # crop pixel 0's centre, in frame px
        return torch.cat([scale[:, None], offset, torch.full_like(scale, self.size)[:, None]], 1)

    def relative(self, depth: Tensor, crop: Tensor) -> Tensor:
        """Cropped depth (mm) relative to each crop's distance, in ``(-1, 1)`` for ``+-window_mm``; holes read 1.

        The distance is the crop's own (its side is ``focal_px * box_mm`` over it), so a jittered crop is jittered
        in depth too, as a locator's error would be.
        """
        z = (self.focal_px * self.box_mm / self.size) / crop[:, 0, None, None, None]
        x = torch.where(depth > 0, depth - z, self.window_mm)
        return x.clamp(-self.window_mm, self.window_mm) * (1.0 / self.window_mm)

    def stages(self, depth: Tensor) -> tuple[dict[str, Tensor], Tensor, Tensor]:
        """The locator's output, the crop, and the cropped depth as the keypoint network reads it."""
        loc = self.locator(depth)
        crop = self.crop_of(loc)
        return loc, crop, self.relative(crop_frames(depth, crop, self.size), crop)

    def finish(self, out: dict[str, Tensor], loc: dict[str, Tensor], crop: Tensor, frame: Tensor) -> dict[str, Tensor]:
        """The keypoint network's output with keypoints in ``frame``'s px, the crop and the locator's output.

        Keypoints are held inside the frame: a crop may reach past its border, and a keypoint that counts is inside.
        """
        out["keypoints"] = clamp_to_frame(to_frame(out["keypoints"], crop), *frame.shape[-2:])
        out["crop"] = crop
        out.update(loc)
        return out

    def forward(self, depth: Tensor) -> dict[str, Tensor]:
        loc, crop, x = self.stages(depth)
        return self.finish(self.net(x), loc, crop, depth)


class CropHandPoseNet(HandPoseNet):
    """The training form of a two-stage model: the auxiliary heads read the keypoint network's features on the
    crop (so ``seg`` is in the crop's pixels)."""

    net: CropKeypointNet

    def forward(self, depth: Tensor) -> dict[str, Tensor]:
        loc, crop, x = self.net.stages(depth)
        feats, decoded = self.net.net.features(x)
        out = self.net.finish(self.net.net.head(decoded), loc, crop, depth)
        out.update(self.aux(feats[-1], decoded))
        return out
