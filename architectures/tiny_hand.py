"""tiny_hand: a tiny 2.5D hand-pose network on the principles of Chidananda et al. (arXiv 1909.05897) and its
patent (US11775836B2), and the ablations that test its design choices.

The paper's exact layer list is not public. What we take from it: an encoder of three tiers of unit blocks,
each tier more complex than the one before, a light decoder to the keypoint output, a visibility decoder trained
with BCE (here in :class:`~architectures.hand_pose.AuxHeads`), auxiliary tasks in training only, and the budget
(3% of MobileNetV2's FLOPs, 2% of its parameters, under 35 MFLOPs, under 300 KB at fp32). Everything else is
ours; :func:`tiny_hand`'s docstring says what and why.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor, nn

from architectures.hand_crop import CropHandPoseNet, CropKeypointNet, Locator
from architectures.hand_pose import DepthNorm, HandPoseNet, KeypointNet, conv_bn, init_weights
from effbench.registry import register_model


@dataclass(frozen=True)
class TinyHandConfig:
    """The knobs the ablations turn."""

    stem_channels: int = 16  # at 1/4: the stem's output, the decoder's output and its last skip
    channels: tuple[int, int] = (24, 64)  # at 1/8 (tier 1) and 1/16 (tier 2)
    blocks8: int = 1  # residual depthwise-separable blocks at 1/8
    dilations: tuple[int, ...] = (1, 1, 1, 1, 1)  # one residual depthwise-separable block at 1/16 per entry
    early_stride: int = 4  # 4: one 4x4 patch stem to 1/4; 2: a 2x2 patch stem to 1/2, then a 3x3 stride-2 conv
    upsample: str = "bilinear"  # the decoder's upsampling ("bilinear" or "nearest")
    heatmap_stride: int = 8  # 8: the heatmaps are read at 1/8; 4: the decoder goes on to 1/4 through the stem's skip
    max_depth_mm: float | None = 1000.0  # the input clamp (DepthNorm's max_mm); None: none

    @property
    def decoder_channels(self) -> int:
        """Channels of the decoder's output: tier 1's at 1/8, the stem's at 1/4."""
        return self.channels[0] if self.heatmap_stride == 8 else self.stem_channels

    def scaled(self, factor: float) -> TinyHandConfig:
        """Every width times ``factor``."""
        c1, c2 = (max(2, round(c * factor)) for c in self.channels)
        return dataclasses.replace(self, stem_channels=max(2, round(self.stem_channels * factor)), channels=(c1, c2))


class DSBlock(nn.Module):
    """Residual depthwise-separable unit: a depthwise (optionally dilated) 3x3, a pointwise 1x1, an identity skip."""

    def __init__(self, channels: int, dilation: int = 1):
        super().__init__()
        self.dw = conv_bn(channels, channels, 3, dilation=dilation, groups=channels)
        self.pw = conv_bn(channels, channels, 1, act=False)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(x + self.pw(self.dw(x)))


def _stem(cfg: TinyHandConfig) -> nn.Module:
    # A plain patch convolution (kernel = stride, no padding): ONNX Runtime runs it as one Conv, where the
    # space-to-depth reshape + transpose + 1x1 it replaced (faster in eager PyTorch) was the most expensive node of
    # the whole graph (~150 us of a 0.2 ms inference).
    s = cfg.stem_channels
    if cfg.early_stride == 4:
        return conv_bn(1, s, 4, stride=4)
    if cfg.early_stride == 2:
        return nn.Sequential(conv_bn(1, s // 2, 2, stride=2), conv_bn(s // 2, s, 3, stride=2))
    raise ValueError(f"early_stride must be 2 or 4, got {cfg.early_stride}")


class TinyHandEncoder(nn.Module):
    """Stem to 1/4; tier 1, a 2x2 stride-2 conv to 1/8 and ``blocks8`` DS blocks; tier 2, a 2x2 stride-2 conv to
    1/16 and one DS block per dilation. Returns the stem's, tier 1's and tier 2's maps."""

    def __init__(self, cfg: TinyHandConfig):
        super().__init__()
        s, (c1, c2) = cfg.stem_channels, cfg.channels
        self.stem = _stem(cfg)
        self.tier1 = nn.Sequential(conv_bn(s, c1, 2, stride=2), *(DSBlock(c1) for _ in range(cfg.blocks8)))
        self.tier2 = nn.Sequential(conv_bn(c1, c2, 2, stride=2), *(DSBlock(c2, d) for d in cfg.dilations))

    def forward(self, x: Tensor) -> list[Tensor]:
        f0 = self.stem(x)
        f1 = self.tier1(f0)
        return [f0, f1, self.tier2(f1)]


class TinyHandDecoder(nn.Module):
    """Back up through additive skips: tier 2 projected (1x1 with bias) and upsampled to 1/8, plus tier 1's map,
    refined by a depthwise-separable 3x3. With ``heatmap_stride`` 8 that is the output (tier 1's width); with 4 the
    refinement narrows to the stem's width, is upsampled to 1/4 and added to the stem's map."""

    def __init__(self, cfg: TinyHandConfig, deep_channels: int | None = None):
        super().__init__()
        c1 = cfg.channels[0]
        if cfg.upsample not in ("bilinear", "nearest"):
            raise ValueError(f"upsample must be 'bilinear' or 'nearest', got {cfg.upsample!r}")
        if cfg.heatmap_stride not in (4, 8):
            raise ValueError(f"heatmap_stride must be 4 or 8, got {cfg.heatmap_stride}")
        self.mode = cfg.upsample
        self.to_quarter = cfg.heatmap_stride == 4
        self.proj = nn.Conv2d(deep_channels or cfg.channels[-1], c1, 1)
        self.refine8 = nn.Sequential(conv_bn(c1, c1, 3, groups=c1),
                                     conv_bn(c1, cfg.decoder_channels, 1, act=not self.to_quarter))
        self.act = nn.ReLU(inplace=True)

    def extra_repr(self) -> str:
        return f"upsample={self.mode!r}"  # in the repr, so the model fingerprint of a run record sees the mode

    def _up(self, x: Tensor, like: Tensor) -> Tensor:
        if self.mode == "nearest":
            return F.interpolate(x, size=like.shape[-2:], mode="nearest")
        return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)

    def forward(self, feats: list[Tensor]) -> Tensor:
        f0, f1, deep = feats
        x = self.refine8(self.act(f1 + self._up(self.proj(deep), f1)))
        return self.act(f0 + self._up(x, f0)) if self.to_quarter else x


#: Channels at 1/16 of the earlier dense layout (``tiny_hand_dense``).
DENSE_WIDTH = 48


class DenseTier2Unit(nn.Module):
    """The earlier dense layout's tier 2: 2x2 stride-2 down-projection, then a dense dilated 3x3, identity skip."""

    def __init__(self, cin: int, cout: int, dilation: int):
        super().__init__()
        self.down = conv_bn(cin, cout, 2, stride=2)
        self.conv = conv_bn(cout, cout, 3, dilation=dilation, act=False)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        x = self.down(x)
        return self.act(x + self.conv(x))


class DenseTier3Unit(nn.Module):
    """The earlier dense layout's tier 3: bottleneck 1x1 reduce, dense dilated 3x3, 1x1 expand, identity skip."""

    def __init__(self, channels: int, dilation: int):
        super().__init__()
        mid = channels // 2
        self.reduce = conv_bn(channels, mid, 1)
        self.conv = conv_bn(mid, mid, 3, dilation=dilation)
        self.expand = conv_bn(mid, channels, 1, act=False)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(x + self.expand(self.conv(self.reduce(x))))


class DenseTinyHandEncoder(nn.Module):
    """The earlier dense layout (ablation): stem to 1/4 (16 ch), one 2x2 stride-2 conv to 1/8 (24 ch), a dense
    tier 2 to 1/16 (48 ch, 3x3 at dilation 1) and a dense bottleneck tier 3 (3x3 at dilation 2)."""

    def __init__(self, cfg: TinyHandConfig, width: int = DENSE_WIDTH):
        super().__init__()
        self.stem = _stem(cfg)
        self.tier1 = conv_bn(cfg.stem_channels, cfg.channels[0], 2, stride=2)
        self.tier2 = DenseTier2Unit(cfg.channels[0], width, 1)
        self.tier3 = DenseTier3Unit(width, 2)

    def forward(self, x: Tensor) -> list[Tensor]:
        f0 = self.stem(x)
        f1 = self.tier1(f0)
        return [f0, f1, self.tier3(self.tier2(f1))]


def _keypoint_net(cfg: TinyHandConfig, dense: bool = False, norm: nn.Module | None = None, **kwargs) -> KeypointNet:
    encoder = DenseTinyHandEncoder(cfg) if dense else TinyHandEncoder(cfg)
    decoder = TinyHandDecoder(cfg, deep_channels=DENSE_WIDTH if dense else cfg.channels[-1])
    init_weights(encoder)
    init_weights(decoder)
    norm = DepthNorm(max_mm=cfg.max_depth_mm) if norm is None else norm
    return KeypointNet(encoder, decoder, cfg.decoder_channels, norm=norm, stride=cfg.heatmap_stride, **kwargs)


def _create_tiny_hand(cfg: TinyHandConfig = TinyHandConfig(), *, dense: bool = False, **kwargs) -> HandPoseNet:
    net = _keypoint_net(cfg, dense, **kwargs)
    deep = DENSE_WIDTH if dense else cfg.channels[-1]
    return HandPoseNet(net, encoder_channels=deep, decoder_channels=cfg.decoder_channels)


@register_model(params=36_320, macs=3_478_400)
def tiny_hand(**kwargs) -> HandPoseNet:
    """The tiny hand-pose net: 36k parameters, 3.5 M MACs (7.3 MFLOPs) at 120 x 160 (deployable form): 1.6% of
    mobilenet_v2_100's parameters and 2.9% of its FLOPs.

    Layout (ours; the paper's layer list is not public): depth clamped at 1 m and normalised; a 4x4 stride-4 patch
    stem to 1/4 (16 ch); tier 1, a 2x2 stride-2 conv to 1/8 (24 ch) and one residual depthwise-separable (DS) block;
    tier 2, a 2x2 stride-2 conv to 1/16 (64 ch) and five residual DS blocks; a decoder that projects tier 2 (1x1),
    upsamples it bilinearly to 1/8, adds tier 1 and refines with a DS 3x3; a 1x1 heatmap conv at 1/8 and the
    soft-argmax. The auxiliary heads read tier 2 (pooled) and the decoder's output (mask).

    Deployed (1 thread, batch 1, seven process runs on a noisy shared 2-core Xeon with training stopped,
    2026-12-01): ONNX Runtime fp32 0.100-0.159 ms, most runs 0.100-0.114 ms (8,800-10,000 Hz, 40-50% of the
    measured GEMM roofline), 22.7-37.3x faster than mobilenet_v2_100 there (median 29x); the earlier layout
    (``tiny_hand_hm4``) 0.122-0.212 ms, 13.6-28.5x, in the same runs. Eager PyTorch 1.4-2.5 ms (it runs
    depthwise convolutions slowly).

    Timed in interleaved rounds with mobilenet_v2_100 (the profiler's protocol since 2026-12-01): on the 2-core Xeon,
    25.1-26.2x under ONNX Runtime fp32 over five repeats in one process (9,500-10,100 Hz, 2.3-2.4x its roofline time),
    27.1x in the embedded report's profile; ExecuTorch XNNPACK fp32 24.0x and 31.9x in two runs (0.114-0.204 ms); the
    dense layout (``tiny_hand_dense``) 31.4x under ONNX Runtime in that profile. On an idle 2-core AMD EPYC with AVX-512
    (2026-12-02, five repeats): 28.8x median (26.8-35.8x), 10,600 Hz, 1.2x its roofline time. (The roofline
    multiples above are against torch's matmul; ONNX Runtime's runs 2.2x faster on the AMD EPYC, and the roofline
    is now the faster of the two: in the embedded report's profile there, 15,500 Hz, 23.8x mobilenet_v2_100, 2.1x
    its roofline time.)

    What 30x under ONNX Runtime would cost, measured both ways (untrained variants timed in the same rounds, idle AMD
    EPYC, four rounds; test EPE after 4,000 steps, the A/B recipe below, against 9.02 px for this net, trained
    alongside): tier 1 at 16 channels instead of 24 is ~20% faster (34.6x against 27.8x median), because ONNX Runtime's
    blocked layout works in blocks of 16 channels on AVX-512 and runs 24 as 32, but reads 9.52 px (+5.6%); four DS
    blocks at 1/16 ~5% faster, 9.35 px (+3.7%); no block at 1/8 ~8% faster, 10.02 px (+11%). Widths in multiples of
    16, 32 at 1/8 and 48 at 1/16 (28k parameters, 3.29 M MACs; 32 costs what 24 does there): ~10% faster, 33.95x
    median over the five repeats of ``tests/benchmarks/test_runtime_targets.py`` (30.3-34.8x, 11,600 Hz, 1.1x its
    roofline time), and 9.04 / 9.36 px after 4,000 steps against 9.02 / 9.24 (seeds 0, 1), but trained to
    convergence (the embedded full budget, seed 0) 7.83 px with aux and 7.94 without, against 7.41 and 7.80 (+5.7%,
    +1.8%; PCK@5 47.5% against 51.1% with aux): the net underfits, and at convergence the 1/16 width it gave up
    carries accuracy that 4,000 steps did not show. On the Xeon: three blocks at 1/16 29.6x against 26.4x; fewer,
    wider blocks slower, not faster (three at 80 channels 24.5x against 23.7x). Every faster layout found gives up
    accuracy, so this one is kept.

    Why (A/B runs: tiny_hand with auxiliary tasks, seed 0, 8,192 training frames, batch 32, cosine schedule,
    test split of 1,024 frames; the net underfits, training-frame EPE equals test EPE):
      * Heatmaps at 1/8, not 1/4 (``tiny_hand_hm4`` is the earlier layout): after 4,000 steps 9.07 against 9.34 px
        (-2.9%; median 6.34 against 6.83 px, PCK@5 38.3% against 36.1%), for fewer MACs (3.48 against 3.53 M) and
        fewer nodes: the 1/4 stage was a 16-channel map, so each of the 8 heatmaps was a linear mix of 16 features;
        at 1/8 it mixes tier 1's 24, and the upsample, skip add and 1,200-cell softmax at 1/4 are gone. The
        soft-argmax still resolves the keypoint within a cell. Tried and not kept: 32 channels at 1/8 (9.15 px), a
        target Gaussian of 8 px instead of 4 (9.26 px). Trained to convergence (the embedded full budget) the two
        layouts (this one with the clamp below) are within the seed spread: with aux 7.41 and 7.67 px against 7.83
        and 7.30 (seeds 0, 1), without 7.80 against 7.58 (seed 0). What the layout buys for sure is speed (above).
      * The input clamped at 1 m: 8.91 against 9.07 px after 4,000 steps (-1.8%; validation -3.6%). Hands are
        within arm's reach (the data's hands are at 150-790 mm); beyond, walls and furniture reach 2 m and more, and
        unclamped they set the scale that the first BatchNorm normalises hands by. One elementwise op (19 k FLOPs).
      * Not kept: an exponential moving average of the weights (decay 0.999) on the earlier layout, 9.39 against
        9.34 px; the cosine schedule already anneals.
      * Depth over width at 1/16, in depthwise-separable blocks: for the same MACs (3.5 M) five residual DS blocks
        at 64 channels instead of the earlier dense residual 3x3 + dense bottleneck at 48 (``tiny_hand_dense``)
        reached 9.34 against 10.28 px after 4,000 steps (-9.2%; PCK@5 36.1% against 29.3%). At 1/16 a frame is
        80 cells, so a DS block costs 0.37 M MACs, and five 3x3 blocks see the whole frame. Eight blocks at 48
        channels were behind after 1,000 steps (13.03 against 12.74 px) and were not pursued.
      * No dilation: the same blocks at dilations 1, 2, 4, 1, 2 (``tiny_hand_dil``) reached 9.17 px (-1.8%), but
        ONNX Runtime runs a dilated depthwise convolution on a slow path: 0.199 against 0.132 ms for the whole
        net (one process run, 1 thread; the dense layout 0.121 ms), so the dilated net would miss 5,000 Hz.
        Undilated, the DS net is within 5-15% of the dense layout's ONNX Runtime time (0.122 against 0.108-0.113
        ms in the runs above, one of which timed the dense net at 0.174).
      * Early aggressive downsampling: one 4x4 stride-4 convolution to 1/4. At 120 x 160 every layer at full or
        half resolution costs more than the whole rest of the net; the keypoints are read from a 1/4 map anyway.
        A plain convolution, not a space-to-depth reshape + 1x1: under ONNX Runtime that transpose was the most
        expensive node of the graph. A 2x2 patch to 1/2 and a 3x3 stride-2 conv to 1/4 (``tiny_hand_s2``) cost
        35% more MACs and reached the same validation EPE on the dense layout (11.74 against 11.81 px after 2,000
        steps).
      * The decoder's 1/8 skip with a DS refinement: tier 1's map carries finger-scale detail that 1/16 features
        lack; on the dense layout it lowered test EPE by 2.2% after 4,000 steps (10.47 against 10.71 px) for
        0.2 M MACs. A refinement at 1/4 instead cost 0.5 M MACs and was worse (13.91 against 13.18 px, 1,000
        steps).
      * Bilinear upsampling: nearest (cheaper under ONNX Runtime) was 3.8% behind after 2,000 steps (11.14
        against 10.73 px validation EPE, dilated blocks).
      * Non-overlapping 2x2 strided convolutions to go down, not 3x3 stride 2: no padding, fewer MACs, and torch's
        batch-1 CPU convolution builds an im2col buffer for small padded maps.
      * Identity skips in every block (gradient flow through a thin net); additive decoder skips, not
        concatenated ones: no extra channels in the convolution after.
    """
    return _create_tiny_hand(**kwargs)


@register_model(params=43_043, macs=3_305_240)
def tiny_hand_crop(**kwargs) -> CropHandPoseNet:
    """Two stages (:mod:`architectures.hand_crop`): a locator (8/16/32 channels at 1/4, 1/8, 1/16, two DS blocks
    at dilations 1 and 2, its maps back at 1/8, the distance under its own attention) finds the hand's centre and
    distance in the frame; tiny_hand's network reads a 120 x 120 crop of 250 mm around it, its depth relative to
    the hand's distance; keypoints come back in frame pixels. 43k parameters, 3.3 M MACs (7.1 MFLOPs): 1.9% and 2.8%
    of mobilenet_v2_100's. Trained on physical augmentation only (``augment_physical``, the embedded suite's budgets
    set it).

    Why: tiny_hand underfits (its training-frame EPE equals its test EPE) and its error grows with the hand's size
    in the frame (13 px for hands nearer than 300 mm, 7 px beyond 500 mm, after 4,000 steps). A crop at the hand's
    distance shows every hand at one size and spends no operation on the background. Measured (aux, seed 0, 8,192
    training frames, batch 32, test split of 1,024 frames):
      * After 4,000 steps (cosine schedule): 7.68 px against tiny_hand's 8.91 (-14%; median 4.80 against 6.26 px,
        PCK@5 51.9% against 39.6%), with a locator that regressed the distance; the same with the distance read
        from the nearest depth in each 16 x 16 block (this model's locator, with three blocks) 7.72 px, its distance
        error after 1,000 steps 26 against 51 mm. Cropped around the true hand (centre and distance jittered by 5%
        and 10%, 128 x 128) it reached 6.50 px: what a perfect locator would add. Trained on crops around the true
        hand (jittered) instead of its own locator's, 7.87 px: the second stage is better off learning its
        locator's errors.
      * The keypoint network reads depth relative to the crop's distance (+-125 mm, clamped; holes read far),
        not tiny_hand's absolute normalisation: the crop shows every hand at one size, this at one depth. After
        4,000 steps (the same recipe, the training loop's code) 6.79 against 7.57 px (-10%; validation 7.44
        against 8.55). Not kept, within the noise: a +-200 mm window 6.83 px, a 220 mm box 6.69; worse: holes
        read as 0 instead of far, 7.10. The crop's side jittered by 5% instead of 10% in training (with relative
        depth, the side's jitter is also the depth window's): 6.60 px, validation 7.19 against 7.44.
      * Trained to convergence (the embedded full budget's recipe), aux on, with the 1/16 locator and the default
        augmentation: 5.75 / 5.65 / 5.56 px (seeds 0-2, 5.65 +- 0.09), against 6.21 / 6.11 / 6.71 with absolute
        depth and tiny_hand's 7.56 +- 0.13; 1.16x mobilenet_v2_100's 4.87 px. PCK@5 68.4%, handedness 92.6%,
        keypose 69.3%, 2.5D error 57 mm. Aux off 5.66 / 5.41 / 5.57 (5.55 +- 0.13): the auxiliary tasks do not
        lower its keypoint error.
      * Where the rest comes from (seed 1, test split): the locator. With the true centre and distance instead
        of its own it reads 4.85 px (the centre alone 5.24, the distance alone 5.25): its centre is 3.6 px off
        (median; 9.6 px at the 90th percentile), its distance 12 mm (49 mm). Not the fix after 4,000 steps: a wider
        locator (8/16/48 channels, 46k parameters in all) 6.55 px, a 3x locator loss 6.60.
      * After 4,000 steps (the same recipe; against 6.60 px, validation 7.19): the locator's maps at 1/8 (its
        1/16 map projected, upsampled and added to its 1/8 map, as the keypoint decoder does; +960 parameters,
        +0.36 MFLOPs) 6.51 px, validation 6.81; its centre's 90th-percentile error 9.6 against 10.8 px, its
        distance's 46 against 53 mm. The augmentation: the default zooms the image by 0.85-1.15x and shifts the
        depth by +-50 mm without scaling the image, so it shows hands whose size in the image does not match their
        distance (the data already draws hands of 0.85-1.15x size), which is what the crop's side is computed
        from. Without the zoom 6.52 px (validation 7.06); without the depth shift 6.59 (7.35); with none 6.39 (7.01).
        Kept: the depth shift moves the hand (the image scales by z / (z + dz)) and no zoom: with the 1/8 locator
        6.38 px (validation 7.06), against 6.43 (6.37) with no augmentation at all, which a real camera's frames
        would punish. Not kept: the heatmaps at 1/4 of the crop (6.75 px, validation 7.03); a target Gaussian of
        8 instead of 4 px (6.73, 7.79).
      * This form (1/8 locator, physical augmentation), converged, aux on: 5.28 / 5.74 / 5.54 px (5.52 +- 0.23,
        1.13x mobilenet_v2_100's 4.87); aux off 5.18 / 5.85 / 5.80 (5.61 +- 0.38): within the seed spread of the
        form before (5.60 over its six runs against 5.57). Its locator's centre is 3.2-3.5 px off at the median
        and 8.7-9.4 px at the 90th percentile, its distance 12 mm and 40-45 mm; with the true centre and distance
        the same weights read 4.59 / 4.94 / 4.80 px.
      * The same form with a plateau patience of 12 validation points instead of 6 (the embedded suite's recipe for this
        net until the patience of 24 below): aux on 4.84 / 4.69 / 5.03 px (seeds 0-2, 4.86 +- 0.17; was 5.28 /
        5.74 / 5.54), 1.00x mobilenet_v2_100's 4.87 (a lower bound: that one run stopped at its 12,000-step cap still
        improving); PCK@5 74.2%, 2.5D error 51 mm, handedness 94.1%, keypose 77.7%. Aux off 5.08 / 4.77 / 5.03
        (4.96 +- 0.16; PCK@5 73.4%, 2.5D error 51.6 mm): aux on - off -0.24 / -0.08 / 0.00 px, -0.11 [-0.40, +0.19]
        (95%, 3 seeds), within the seed spread, as with the patience of 6. Its validation curve jumps at the first
        learning rate (the locator's centre map moves), so 6 points fired the first plateau at 6,000-11,750 steps, and
        the later it fired the lower the run ended; with 12 the first plateau came at 17,250-28,000 steps and the runs
        stopped at 25,000-38,000 (72 and 80 min on one thread, 37 on two). The training frames read as the test frames
        (4.95 against 5.28 px for the seed-0 run above): the net underfits, so more steps at the first rate, not more
        data, were what it lacked. Not the fix: a temperature on either soft-argmax at test time (x1.25-2 on the logits:
        5.24-5.50 px against 5.28).
      * A patience of 24 points (6,000 steps) under a cap of 100,000 (the embedded suite's recipe for this net),
        aux on: 4.78 / 4.51 / 4.50 px (seeds 0-2, 4.60 +- 0.16; paired against 12 points -0.06 / -0.18 / -0.53) in
        50,250-74,250 steps; PCK@5 74.8-77.2%, 2.5D error 49-51 mm, handedness 94-95%, keypose 78-80%.
      * Where the error is (the seed-1 run of the line above, test split, per frame): its median frame reads 2.78 px,
        mobilenet_v2_100's (aux off, converged at 4.16 px) 3.02, and its best 95% of frames 3.57 px against the
        reference's 3.75 on the same frames. Its worst 5% read 22.6 px (the reference 12.6 on them) and make 25% of
        its mean. In them the locator failed: an occluder in front of the hand, whose depth it read (its distance
        off by 70 mm at the median there, against 10 mm elsewhere, mostly too near: the crop too large), or the
        forearm taken for the hand (its centre 8.4 px off at the median). With the true centre and distance the same
        weights read 13.8 px on those frames and 3.91 px over all: the locator is the whole gap to the reference.
      * The locator's distance under its own attention (this form; it was read under the centre's softmax, where an
        occluder over the hand's centre gave the occluder's depth), its 1/16 blocks at dilations 1 and 2 (were 1, 1;
        +17 parameters, +4,800 MACs). The locator trained alone (its gradient comes from its own loss only, the crop
        is detached; 12,000 steps, cosine, seed 0, test split): distance error mean 22.1 -> 17.2 mm, 95th percentile
        74 -> 57 mm, over 50 mm 7.8 -> 6.0% of hands; centre 95th percentile 12.0 -> 11.5 px (the attention alone:
        18.0 mm, 60 mm, 5.8%, 12.8 px; four blocks at 1, 2, 1, 2, at the budget's edge: 17.4 mm, 55 mm, 5.6%,
        10.8 px). Swapped into the converged runs above without training them again: 4.39 against 4.57 px (seed
        1, patience 24) and 4.85 against 4.89 (seed 1, aux off, patience 12) for the old locator trained the same
        way. Trained as a whole (the embedded recipe, patience 24, aux on): 4.28 / 4.38 px (seeds 0, 1) against the
        old form's 4.78 / 4.51 (-0.50 / -0.13), stopping at 80,000 and 70,250 steps (86 and 70 min); PCK@5 77.6 /
        77.1%, 2.5D error 48.6 / 48.8 mm, 3D 69.7 / 68.9 mm (mobilenet_v2_100, aux off: 69.0), handedness 95.4 /
        94.3%, keypose 81.5 / 78.4%, int8 +1.0 / +1.8%. Seed 2: 4.52 px (old form 4.50), at 54,500 steps; over the
        three seeds 4.39 +- 0.12 px, 1.06x mobilenet_v2_100's aux-off 4.16. Its worst frames are still where it
        trails: the 95th-percentile frame reads 13.8 / 13.5 / 14.9 px against the reference's 11.5. Aux off 4.53 /
        4.40 / 4.48 px (4.47 +- 0.06): aux on - off -0.25 / -0.02 / +0.03, -0.08 [-0.45, +0.29] px (95%, 3 seeds),
        within the seed spread, as in every form of this net before.
      * Each auxiliary task alone (this form, seed 0, converged at 50,750-71,250 steps): segmentation 4.49 px,
        visibility 4.47, keypose 4.38, handedness 4.44, against 4.53 with none and 4.28 with all four. Each lies
        within the three seeds' range of aux on (4.28-4.52 px), and all but keypose (by 0.02 px) within that of aux
        off (4.40-4.53): no single task stands out. The keypose and handedness heads learn as well alone as beside
        the others (80.8% and 95.3% against 81.5% and 95.4%); what they leave in the shared layers does not lower the
        keypoint error measurably.
      * On frames of other sensors (the test split's scenes rendered again with one setting changed; the two runs
        above against mobilenet_v2_100 aux off, converged, 4.16 px as trained): 3x the depth noise 4.28 / 4.43
        against 4.19 px; 5x the holes 4.45 / 4.46 against 4.41; hands at 150-450 mm instead of 200-700, 5.74 / 5.92
        against 5.82. Another field of view moves the crop: its side is ``focal_px * box_mm / z``, so the crop must be
        told the camera's focal length (:func:`effbench.crop.use_camera`; training tells it the data's). Not told,
        at 70 degrees (114 px) 4.47 / 4.58 against 3.83 and at 50 degrees (172 px) 6.10 / 6.29 against 5.28
        (1.17-1.19x); told, 3.60 / 3.71 and 5.29 / 5.36 (0.94-1.02x). Keypoints are in pixels, so a wider view reads
        smaller errors for every model.
      * Not free at deployment: ONNX Runtime (fp32, 1 thread, batch 1, on a 2-core Xeon) 0.30-0.32 ms against
        tiny_hand's 0.10-0.17 ms in three process runs while two trainings ran, 0.455 against 0.103 ms in the previous
        report's profile with training stopped (absolute depth): 2,200-3,300 Hz, 3-4x tiny_hand's time. Its graph has
        139 nodes against 50: the locator's 8 convolutions and the small ops of the crop, the relative depth and the two
        soft-argmaxes, each a few microseconds whatever its size (a GridSample crop alone took ~200 us; a gather from a
        padded frame takes the same pixels); 0.504 ms in the earlier report's profile. This form (the 1/8 locator):
        0.254 ms against tiny_hand's 0.118 and mobilenet_v2_100's 2.70 ms, timed in seven interleaved rounds in one
        process (0.663 ms in a report's profile that timed one model after the other; 0.502 ms, 8.2x mobilenet_v2_100,
        in the embedded report's interleaved profile, whose rounds also run eager and int8 windows; under ExecuTorch
        XNNPACK 1.6 ms there). Where ExecuTorch's time goes (its parts timed in the same rounds, one thread, with two
        training runs on the machine's two cores, so only the shares count): the whole 0.68 ms against 0.17 under ONNX
        Runtime; the keypoint network alone on a crop 0.057 against 0.054 ms (XNNPACK runs the convolutions as fast);
        the locator 0.28 against 0.06 ms and the crop another 0.33 against 0.04 ms. XNNPACK takes the convolutions, in
        eight partitions; the hole masking, the min-pool's surroundings, the soft-argmax expectations, the index
        arithmetic and the gather (``where``, ``gt``, ``sum``, ``select``, ``arange``, ``gather``, four layout copies)
        run in ExecuTorch's portable kernels, each a call of its own. int8 (ONNX Runtime, the input's preprocessing
        and stems in fp32) costs
        0.2-0.7% EPE over the earlier form's six converged runs; with the cropped millimetres quantized it cost 16-17%,
        with only the stems reading int8 up to 48% (seed 1, aux off).
    """
    cfg = TinyHandConfig()
    locator = Locator((8, 16, 32), (1, 2), DSBlock)
    net = CropKeypointNet(locator, _keypoint_net(cfg, norm=nn.Identity(), **kwargs), size=120)
    return CropHandPoseNet(net, encoder_channels=cfg.channels[-1], decoder_channels=cfg.decoder_channels)


@register_model(params=36_048, macs=3_531_200)
def tiny_hand_hm4(**kwargs) -> HandPoseNet:
    """Ablation, the heatmaps at 1/4 (the earlier layout): the decoder goes on from 1/8, narrows to 16 channels,
    upsamples and adds the stem's map. What does the finer map buy for its upsampling, skip and larger softmax?"""
    return _create_tiny_hand(TinyHandConfig(heatmap_stride=4, max_depth_mm=None), **kwargs)


@register_model(params=37_352, macs=3_446_880)
def tiny_hand_dense(**kwargs) -> HandPoseNet:
    """Ablation, the earlier dense layout at the same cost (37k parameters, 3.5 M MACs): 16/24/48 channels, a dense
    residual 3x3 and a dense bottleneck at 1/16 instead of five depthwise-separable blocks. Dense or
    depthwise-separable for the same MACs: which is more accurate, and which is faster under each runtime?"""
    return _create_tiny_hand(dense=True, **kwargs)


@register_model(params=134_328, macs=12_507_200)
def tiny_hand_wide(**kwargs) -> HandPoseNet:
    """Ablation, every width x2: does capacity beyond the 2%-of-MobileNetV2 budget buy accuracy?"""
    return _create_tiny_hand(TinyHandConfig().scaled(2.0), **kwargs)


@register_model(params=10_452, macs=1_047_200)
def tiny_hand_slim(**kwargs) -> HandPoseNet:
    """Ablation, every width x0.5: how far below the budget can the net shrink before accuracy breaks?"""
    return _create_tiny_hand(TinyHandConfig().scaled(0.5), **kwargs)


@register_model(params=36_320, macs=3_478_400)
def tiny_hand_dil(**kwargs) -> HandPoseNet:
    """Ablation, the 1/16 blocks at dilations 1, 2, 4, 1, 2 (same params and MACs): what does a wider receptive
    field buy, and what does the dilated depthwise convolution cost under each runtime?"""
    return _create_tiny_hand(TinyHandConfig(dilations=(1, 2, 4, 1, 2)), **kwargs)


@register_model(params=37_264, macs=4_707_200)
def tiny_hand_s2(**kwargs) -> HandPoseNet:
    """Ablation, no early 4x downsampling: a 2x2 patch stem to 1/2, then a 3x3 stride-2 conv to 1/4 (a
    conventional two-stride-2 stem). Tests what working at 1/2 resolution buys for its MACs and latency."""
    return _create_tiny_hand(TinyHandConfig(early_stride=2), **kwargs)


@register_model(input_shape=(1, 1, 240, 320), params=36_320, macs=14_534_400)
def tiny_hand_240x320(**kwargs) -> HandPoseNet:
    """The same net at 240 x 320 input, the size comparison with the paper's 35 MFLOPs figure (4x the cost)."""
    return _create_tiny_hand(**kwargs)
