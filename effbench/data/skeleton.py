"""The 21-joint hand skeleton, the keypoint subset the models predict, and the keypose classes.

Joint order (as in common 21-joint hand data sets): wrist; thumb CMC, MCP, IP, tip; then index, middle,
ring and pinky, each MCP, PIP, DIP, tip.
"""

from __future__ import annotations

FINGERS: tuple[str, ...] = ("thumb", "index", "middle", "ring", "pinky")

JOINT_NAMES: tuple[str, ...] = ("wrist",) + tuple(
    f"{finger}_{part}"
    for finger in FINGERS
    for part in (("cmc", "mcp", "ip", "tip") if finger == "thumb" else ("mcp", "pip", "dip", "tip"))
)
NUM_JOINTS = len(JOINT_NAMES)  # 21

#: Parent of each joint in the kinematic tree (-1 for the wrist).
PARENTS: tuple[int, ...] = (-1,) + tuple(0 if j % 4 == 1 else j - 1 for j in range(1, NUM_JOINTS))

#: The K = 8 keypoints the models predict by default: wrist, the five tips, index and pinky MCP.
#: Tips carry the pose, the wrist and two MCPs fix the palm's position and orientation.
KEYPOINT_SUBSET: tuple[int, ...] = (0, 4, 8, 12, 16, 20, 5, 17)
KEYPOINT_NAMES: tuple[str, ...] = tuple(JOINT_NAMES[j] for j in KEYPOINT_SUBSET)
NUM_KEYPOINTS = len(KEYPOINT_SUBSET)  # 8

KEYPOSES: tuple[str, ...] = ("CShape", "Finger", "Fist", "LShape", "Ok", "OpenHand", "Pinch", "Thumb", "NoPose")
NUM_KEYPOSES = len(KEYPOSES)  # 9
NO_POSE = KEYPOSES.index("NoPose")  # 8

HANDEDNESS: tuple[str, ...] = ("left", "right")
