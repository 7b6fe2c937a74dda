"""A 21-joint kinematic hand built of capsules, its keypose templates and anatomical limits, and its placement
in front of an egocentric camera.

Local hand frame (a right hand; a left hand is its mirror image in x): origin at the wrist, ``y`` from the
wrist towards the middle-finger knuckle, ``z`` out of the back of the hand (dorsal), ``x = y x z`` towards the
little finger. Lengths in mm, angles in radians.

Each finger is a planar chain: after an abduction ``a`` at its base, the k-th bone points along
``cos(phi_k) (cos(a) f + sin(a) l) + sin(phi_k) n`` where ``phi_k`` is the sum of the first k flexion angles and
``(f, l, n)`` is the finger's base frame (forward, abduction side, palmar side). The thumb is the same model with
its own base frame at the CMC joint, which is a simplification of its saddle joint but reaches every keypose.

Angles per finger, in the order of :data:`effbench.data.skeleton.FINGERS` (thumb, index, middle, ring, pinky):
``(flex1, abduction, flex2, flex3)``: for the fingers MCP flexion, MCP abduction (positive towards the little
finger), PIP and DIP flexion; for the thumb CMC flexion, CMC abduction (positive away from the palm, radially),
MCP and IP flexion.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch

from effbench.data.skeleton import KEYPOSES, NO_POSE, NUM_JOINTS

_DEG = math.pi / 180.0

# --- Geometry of an average adult right hand (mm), after anthropometric tables (hand length ~185 mm). ---------
#: Base joint of each finger chain: thumb CMC, then the four MCPs.
_BASES = ((-19.0, 24.0, -10.0), (-24.0, 86.0, 0.0), (-4.0, 90.0, 0.0), (14.0, 85.0, -1.0), (30.0, 75.0, -3.0))
#: Bone lengths along each chain: thumb metacarpal, proximal, distal; fingers proximal, middle, distal phalanx.
_LENGTHS = ((44.0, 32.0, 28.0), (40.0, 24.0, 22.0), (45.0, 28.0, 23.0), (42.0, 27.0, 22.0), (33.0, 20.0, 20.0))
#: Capsule radius of each bone of each chain (the fingers taper towards the tip).
_RADII = ((13.0, 10.0, 9.0), (9.5, 8.5, 7.5), (10.0, 9.0, 8.0), (9.5, 8.5, 7.5), (8.5, 7.5, 6.5))
#: Metacarpal capsules of the palm: from these points near the wrist to each finger's MCP, with these radii.
_METACARPAL_BASES = ((-13.0, 14.0, 0.0), (-3.0, 14.0, 0.0), (7.0, 14.0, 0.0), (16.0, 12.0, -1.0))
_METACARPAL_RADII = (12.0, 12.5, 12.0, 11.0)
_WRIST_ENDS = ((-19.0, 5.0, -2.0), (19.0, 5.0, -2.0))
_WRIST_RADIUS = 15.0
_FOREARM_RADIUS = 24.0
#: Splay of the four fingers' base direction (positive towards the little finger).
_SPLAY_DEG = (-7.0, 0.0, 6.0, 12.0)
#: The distal capsule ends this many radii short of the tip joint, so the finger's surface ends just beyond it.
_TIP_INSET = 0.6

#: Anatomical limits, degrees, (low, high) per finger and angle (flex1, abduction, flex2, flex3).
LIMITS_DEG = (
    ((-25.0, 70.0), (-20.0, 75.0), (-15.0, 80.0), (-20.0, 90.0)),  # thumb: CMC flex, CMC abd, MCP, IP
    ((-20.0, 95.0), (-25.0, 20.0), (0.0, 115.0), (0.0, 90.0)),  # index
    ((-20.0, 95.0), (-15.0, 15.0), (0.0, 115.0), (0.0, 90.0)),  # middle
    ((-20.0, 95.0), (-15.0, 20.0), (0.0, 115.0), (0.0, 90.0)),  # ring
    ((-20.0, 95.0), (-15.0, 30.0), (0.0, 115.0), (0.0, 90.0)),  # pinky
)

_FIST = (85.0, 0.0, 100.0, 60.0)
_THUMB_TUCKED = (40.0, 5.0, 35.0, 40.0)
#: Thumb of Ok and Pinch: solved (gradient descent on the forward kinematics of the average hand) so that the thumb
#: tip touches the index tip of those poses, i.e. the tips are one radius sum (7.5 + 9 mm) apart; a test checks it.
_THUMB_CONTACT = (1.8, 0.9, 34.8, 52.9)
#: Keypose templates, degrees, one row per chain (thumb, index, middle, ring, pinky). Each keypose differs from
#: the others in which fingers are extended, so a classifier can tell them apart from a depth frame.
TEMPLATES_DEG: dict[str, tuple[tuple[float, float, float, float], ...]] = {
    "CShape": ((5.0, 45.0, 10.0, 10.0), (35.0, -3.0, 40.0, 25.0), (35.0, 0.0, 40.0, 25.0), (35.0, 2.0, 40.0, 25.0),
               (35.0, 4.0, 40.0, 25.0)),
    "Finger": (_THUMB_TUCKED, (0.0, -3.0, 3.0, 3.0), _FIST, _FIST, _FIST),
    "Fist": (_THUMB_TUCKED, _FIST, _FIST, _FIST, _FIST),
    "LShape": ((-15.0, 70.0, 0.0, 0.0), (0.0, -3.0, 3.0, 3.0), _FIST, _FIST, _FIST),
    "Ok": (_THUMB_CONTACT, (50.0, -5.0, 55.0, 35.0), (5.0, 2.0, 5.0, 5.0), (5.0, 8.0, 5.0, 5.0),
           (5.0, 18.0, 5.0, 5.0)),
    "OpenHand": ((-10.0, 50.0, 0.0, 0.0), (0.0, -18.0, 3.0, 3.0), (0.0, -4.0, 3.0, 3.0), (0.0, 8.0, 3.0, 3.0),
                 (0.0, 22.0, 3.0, 3.0)),
    "Pinch": (_THUMB_CONTACT, (50.0, -5.0, 55.0, 35.0), _FIST, _FIST, _FIST),
    "Thumb": ((-20.0, 10.0, -5.0, -5.0), _FIST, _FIST, _FIST, _FIST),
}

#: Capsules of one hand: index of the chain bone or special part. Order: forearm, wrist, 4 metacarpals, then the
#: 3 bones of each of the 5 chains; 21 in all. Only the forearm is not "hand" (it is left out of the mask).
NUM_CAPSULES = 1 + 1 + 4 + 15
FOREARM_CAPSULE = 0


def _unit(v: torch.Tensor) -> torch.Tensor:
    return v / v.norm(dim=-1, keepdim=True)


@functools.lru_cache(maxsize=1)
def _chain_frames() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Base frames (f, l, n), each (5, 3), of the five chains of a right hand."""
    f, l, n = [], [], []
    # Thumb: extended it points forward, radially and a little palmar; it flexes across the palm, towards the
    # little finger, and abducts radially away from the index finger.
    ft = _unit(torch.tensor([-0.55, 0.75, -0.35]))
    nt = _unit(torch.tensor([0.55, 0.0, -0.85]) - (torch.tensor([0.55, 0.0, -0.85]) @ ft) * ft)
    lt = torch.linalg.cross(nt, ft)
    if lt[0] > 0:
        lt = -lt
    f.append(ft), l.append(lt), n.append(nt)
    for s in _SPLAY_DEG:
        s = s * _DEG
        f.append(torch.tensor([math.sin(s), math.cos(s), 0.0]))
        l.append(torch.tensor([math.cos(s), -math.sin(s), 0.0]))
        n.append(torch.tensor([0.0, 0.0, -1.0]))
    return torch.stack(f), torch.stack(l), torch.stack(n)


def forward_kinematics(angles: torch.Tensor, lengths: torch.Tensor, bases: torch.Tensor) -> torch.Tensor:
    """Joint positions of right hands in the local hand frame.

    Args:
        angles: (B, 5, 4) radians, (flex1, abduction, flex2, flex3) per chain.
        lengths: (B, 5, 3) bone lengths, mm.
        bases: (B, 5, 3) base joint of each chain (thumb CMC, finger MCPs), mm.

    Returns:
        (B, 21, 3) joints in the order of :data:`effbench.data.skeleton.JOINT_NAMES`.
    """
    f, l, n = (t.to(angles) for t in _chain_frames())
    phi = torch.cumsum(angles[..., [0, 2, 3]], dim=-1)  # (B, 5, 3) accumulated flexion of each bone
    abd = angles[..., 1:2]  # (B, 5, 1)
    plane = torch.cos(abd) * f + torch.sin(abd) * l  # (B, 5, 3) the chain's flexion plane, forward axis
    dirs = torch.cos(phi)[..., None] * plane[:, :, None, :] + torch.sin(phi)[..., None] * n[None, :, None, :]
    pts = bases[:, :, None, :] + torch.cumsum(lengths[..., None] * dirs, dim=2)  # (B, 5, 3, 3)
    chains = torch.cat([bases[:, :, None, :], pts], dim=2).reshape(angles.shape[0], 20, 3)
    wrist = torch.zeros_like(chains[:, :1])
    return torch.cat([wrist, chains], dim=1)


def _limits() -> torch.Tensor:
    return torch.tensor(LIMITS_DEG) * _DEG  # (5, 4, 2)


@functools.lru_cache(maxsize=1)
def keypose_templates() -> torch.Tensor:
    """(8, 5, 4) template angles in radians, keyposes in the order of :data:`KEYPOSES` (NoPose excluded)."""
    return torch.tensor([TEMPLATES_DEG[k] for k in KEYPOSES[:NO_POSE]]) * _DEG


@dataclass(frozen=True)
class HandSample:
    """A batch of posed hands in the camera frame (mm).

    Attributes:
        joints: (B, 21, 3) joint positions.
        joint_radius: (B, 21) radius of the thickest capsule ending at each joint (how far in front of a joint
            its own surface can be).
        caps_a, caps_b: (B, C, 3) capsule end points; radius (B, C).
        keypose: (B,) int64 0..8; handedness (B,) int64 0 left, 1 right.
    """

    joints: torch.Tensor
    joint_radius: torch.Tensor
    caps_a: torch.Tensor
    caps_b: torch.Tensor
    radius: torch.Tensor
    keypose: torch.Tensor
    handedness: torch.Tensor


def _uniform(n: int, lo: float, hi: float, g: torch.Generator, *shape: int) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, *shape, generator=g)


def sample_angles(keypose: torch.Tensor, g: torch.Generator, jitter_deg: float = 7.0) -> torch.Tensor:
    """Joint angles (B, 5, 4) around each keypose's template with Gaussian jitter; free poses for NoPose.

    Free poses draw each finger's curl and the thumb independently, with correlated flexions inside a finger
    (real fingers curl PIP and DIP together), so they look like hands rather than noise.
    """
    n = keypose.shape[0]
    lim = _limits()
    lo, hi = lim[..., 0], lim[..., 1]
    templates = keypose_templates()
    jitter = torch.randn(n, 5, 4, generator=g) * (jitter_deg * _DEG)
    # Curl per finger in [0, 1], then flexions follow the curl with a little independence.
    curl = torch.rand(n, 5, 1, generator=g)
    free = lo + (hi - lo) * (0.8 * curl + 0.2 * torch.rand(n, 5, 4, generator=g))
    free[..., 1] = lo[:, 1] + (hi[:, 1] - lo[:, 1]) * torch.rand(n, 5, generator=g)
    base = templates[keypose.clamp(max=NO_POSE - 1)]
    angles = torch.where((keypose == NO_POSE)[:, None, None], free, base + jitter)
    return torch.maximum(torch.minimum(angles, hi), lo)


def _rotation_from(forward: torch.Tensor, dorsal: torch.Tensor) -> torch.Tensor:
    """(B, 3, 3) rotation whose columns are the local x, y (forward), z (dorsal) axes in the camera frame."""
    y = _unit(forward)
    z = _unit(dorsal - (dorsal * y).sum(-1, keepdim=True) * y)
    x = torch.linalg.cross(y, z)
    return torch.stack([x, y, z], dim=-1)


def _rotate_about(v: torch.Tensor, axis: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """Rodrigues: rotate vectors v (B, 3) about unit axes (B, 3) by angle (B,)."""
    c, s = torch.cos(angle)[:, None], torch.sin(angle)[:, None]
    return v * c + torch.linalg.cross(axis, v) * s + axis * (axis * v).sum(-1, keepdim=True) * (1 - c)


def hand_capsules(
    joints: torch.Tensor, scale: torch.Tensor, radius_scale: torch.Tensor, back: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The capsules of right hands in the local frame, built on their joints.

    Args:
        joints: (B, 21, 3) local joints from :func:`forward_kinematics`.
        scale: (B,) hand scale (palm anchor points scale with it); radius_scale: (B,) factor on every radius.
        back: (B, 3) unit direction of the forearm from the wrist.

    Returns:
        caps_a, caps_b (B, 21, 3) end points, radius (B, 21), and joint_radius (B, 21): the radius of the thickest
        capsule ending at each joint (how far in front of a joint its own surface can be).
    """
    n = joints.shape[0]
    s, rs = scale[:, None, None], radius_scale[:, None]
    chains = joints[:, 1:].reshape(n, 5, 4, 3)
    a = chains[:, :, :3].reshape(n, 15, 3)
    b = chains[:, :, 1:].reshape(n, 15, 3).clone()
    r_chain = torch.tensor(_RADII).reshape(1, 15) * rs
    tip_dir = _unit(b[:, 2::3] - a[:, 2::3])
    b[:, 2::3] = b[:, 2::3] - _TIP_INSET * r_chain[:, 2::3, None] * tip_dir
    meta_a = torch.tensor(_METACARPAL_BASES)[None] * s
    wrist_a = torch.tensor(_WRIST_ENDS)[None] * s
    fore_b = back * 320.0 * s[:, 0]
    caps_a = torch.cat([torch.zeros(n, 1, 3), wrist_a[:, :1], meta_a, a], 1)
    caps_b = torch.cat([fore_b[:, None], wrist_a[:, 1:], chains[:, 1:, 0], b], 1)
    r_meta = torch.tensor(_METACARPAL_RADII)[None] * rs
    radius = torch.cat([_FOREARM_RADIUS * rs, _WRIST_RADIUS * rs, r_meta, r_chain], 1)
    # A chain's base joint takes its first bone's radius (the finger MCPs their metacarpal's), the others the bone
    # that ends there; the wrist the forearm's.
    rc = r_chain.reshape(n, 5, 3)
    jr = torch.cat([rc[:, :, :1], rc], dim=2)
    jr[:, 1:, 0] = r_meta
    joint_radius = torch.cat([radius[:, :1], jr.reshape(n, 20)], 1)
    return caps_a, caps_b, radius, joint_radius


def sample_hands(
    n: int,
    g: torch.Generator,
    intrinsics: tuple[float, float, float, float],
    size: tuple[int, int],
    z_range: tuple[float, float] = (200.0, 700.0),
    left_prob: float = 0.5,
) -> HandSample:
    """Sample ``n`` hands as an egocentric camera sees them.

    The palm's centre is placed 200-700 mm away at a pixel in the lower two thirds of the frame more often than
    not; the back of the hand faces the camera more often than the palm. Keyposes are uniform over the 9 classes
    (NoPose included).

    Where the arm comes from follows the body, as a head-worn camera sees it: a right hand's forearm reaches in
    from its shoulder, so it enters from the bottom edge right of the hand (the hand points up and to the left,
    in-plane angle about -25 deg) or, for a quarter of the hands, from the right edge; a right hand's palm
    centre lies in the right 70% of the frame more often. A left hand is the mirror image. This is the cue that
    tells the hands apart on a real headset: a left and a right hand are mirror images of each other, so the
    hand's own shape does not (a right palm seen from the front is a left hand seen from the back).
    """
    fx, fy, cx, cy = intrinsics
    h, w = size
    keypose = torch.randint(0, NO_POSE + 1, (n,), generator=g)
    handedness = (torch.rand(n, generator=g) >= left_prob).long()
    angles = sample_angles(keypose, g)

    # Per-sample hand scale and bone lengths (+-4% each, on top of the overall scale).
    scale = _uniform(n, 0.85, 1.15, g)[:, None, None]
    lengths = torch.tensor(_LENGTHS) * scale * (1 + 0.04 * torch.randn(n, 5, 3, generator=g)).clamp(0.9, 1.1)
    bases = torch.tensor(_BASES) * scale * (1 + 0.03 * torch.randn(n, 5, 1, generator=g)).clamp(0.93, 1.07)
    joints = forward_kinematics(angles, lengths, bases)  # (n, 21, 3) local, right hand
    radius_scale = scale[:, :, 0] * _uniform(n, 0.9, 1.1, g)[:, None]  # (n, 1)

    # Forearm: from the wrist backwards along the palm, bent by a wrist flexion/deviation.
    flex = _uniform(n, -35.0, 35.0, g) * _DEG
    dev = _uniform(n, -15.0, 15.0, g) * _DEG
    back = torch.stack([torch.sin(dev), -torch.cos(dev) * torch.cos(flex), torch.sin(flex) * torch.cos(dev)], -1)
    caps_a, caps_b, radius, joint_radius = hand_capsules(joints, scale[:, 0, 0], radius_scale[:, 0], back)

    # Mirror left hands (x -> -x in the local frame) before the proper rotation into the camera frame.
    mirror = torch.where(handedness == 0, -1.0, 1.0)[:, None, None]
    joints, caps_a, caps_b = (torch.cat([t[..., :1] * mirror, t[..., 1:]], -1) for t in (joints, caps_a, caps_b))

    # Orientation: forward = up in the image (-y) tipped away from the camera, rotated in the image plane mostly
    # a little, sometimes a lot (entering from a side); the dorsal side faces the camera, rolled about forward.
    # In-plane angle of "forward" (0: straight up, positive: towards the right) for a right hand; mirrored (sign
    # flipped) for a left one. The marginal over both hands spans what the old symmetric draw did (+-110 deg).
    side = torch.rand(n, generator=g) < 0.25
    sign = torch.where(handedness == 1, 1.0, -1.0)
    img_angle = sign * torch.where(
        side, _uniform(n, -110.0, -40.0, g), -25.0 + torch.randn(n, generator=g) * 20.0
    ) * _DEG
    elev = _uniform(n, -15.0, 55.0, g) * _DEG
    forward = torch.stack(
        [torch.sin(img_angle) * torch.cos(elev), -torch.cos(img_angle) * torch.cos(elev), torch.sin(elev)], -1
    )
    palm_up = torch.rand(n, generator=g) < 0.25
    roll = torch.where(palm_up, _uniform(n, 120.0, 240.0, g), torch.randn(n, generator=g) * 45.0) * _DEG
    dorsal0 = torch.tensor([0.0, 0.0, -1.0]).expand(n, 3)
    dorsal0 = dorsal0 - (dorsal0 * forward).sum(-1, keepdim=True) * forward
    dorsal = _rotate_about(_unit(dorsal0), forward, roll)
    rot = _rotation_from(forward, dorsal)  # (n, 3, 3)

    # Position: the palm centre at a sampled pixel and depth.
    z = z_range[0] + (z_range[1] - z_range[0]) * torch.rand(n, generator=g)
    u = (0.5 + sign * _uniform(n, -0.2, 0.35, g)) * (w - 1)  # right: 0.3-0.85 of the width, left: 0.15-0.7
    v = (0.3 + 0.6 * torch.rand(n, generator=g) ** 0.8) * (h - 1)
    centre_cam = torch.stack([(u - cx) * z / fx, (v - cy) * z / fy, z], -1)
    centre_local = torch.tensor([0.0, 50.0, 0.0]) * scale[:, 0]
    t = centre_cam - (rot @ centre_local[..., None])[..., 0]

    def to_cam(p: torch.Tensor) -> torch.Tensor:
        return p @ rot.transpose(1, 2) + t[:, None]

    joints, caps_a, caps_b = to_cam(joints), to_cam(caps_a), to_cam(caps_b)
    # Keep the forearm's far end in front of the camera (it leaves the frame long before that).
    fa, fb = caps_a[:, FOREARM_CAPSULE], caps_b[:, FOREARM_CAPSULE]
    near = 40.0 + radius[:, FOREARM_CAPSULE]
    frac = ((fa[:, 2] - near) / (fa[:, 2] - fb[:, 2]).clamp(min=1e-3)).clamp(0.0, 1.0)
    frac = torch.where(fb[:, 2] < near, frac, torch.ones_like(frac))
    caps_b[:, FOREARM_CAPSULE] = fa + (fb - fa) * frac[:, None]
    return HandSample(joints, joint_radius, caps_a, caps_b, radius, keypose, handedness)
