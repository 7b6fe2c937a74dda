"""The NYU Hand Pose layout loader, on fixture files the test writes itself, and the data CLI."""

import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image

from effbench.cli import main
from effbench.data import NYUHands
from effbench.data.nyu import NYU_TO_SKELETON, read_nyu_depth
from effbench.errors import UsageError


def _write_nyu(root, frames=2):
    folder = root / "train"
    folder.mkdir(parents=True)
    uvd = np.zeros((1, frames, 36, 3))
    uvd[..., 0], uvd[..., 1], uvd[..., 2] = 300.0, 250.0, 700.0
    uvd[0, 0, 24] = (400.0, 200.0, 700.0)  # thumb tip (TH_KNU3_A) of frame 1
    fx, fy, cx, cy = 588.03, 587.07, 320.0, 240.0
    # NYU's own xyz convention has y up.
    xyz = np.stack([(uvd[..., 0] - cx) * uvd[..., 2] / fx, (cy - uvd[..., 1]) * uvd[..., 2] / fy, uvd[..., 2]], -1)
    scipy.io.savemat(folder / "joint_data.mat", {"joint_uvd": uvd, "joint_xyz": xyz})
    for i in range(frames):
        depth = np.full((480, 640), 1200, dtype=np.uint16)
        depth[150:350, 250:450] = 700 + i  # 700 = 2 * 256 + 188
        rgb = np.zeros((480, 640, 3), dtype=np.uint8)
        rgb[..., 1], rgb[..., 2] = depth >> 8, depth & 0xFF
        Image.fromarray(rgb).save(folder / f"depth_1_{i + 1:07d}.png")
    return xyz


def test_nyu_layout_loads_into_the_item_format(tmp_path):
    xyz = _write_nyu(tmp_path)
    png = tmp_path / "train" / "depth_1_0000001.png"
    assert read_nyu_depth(png)[200, 300] == 700.0 and read_nyu_depth(png)[0, 0] == 1200.0
    ds = NYUHands(tmp_path, "train")
    assert len(ds) == 2
    item = ds[0]
    assert item["depth"].shape == (1, 120, 160)
    assert item["depth"][0, 50, 75].item() == 700.0 and ds[1]["depth"][0, 50, 75].item() == 701.0
    # Thumb tip (joint 4): (400, 200) at 640 x 480 -> ((400 + 0.5) / 4 - 0.5, (200 + 0.5) / 4 - 0.5) at 160 x 120,
    # and in mm ((400 - 320) * 700 / 588.03, (200 - 240) * 700 / 587.07, 700) = (95.23, -47.69, 700), y down.
    assert NYU_TO_SKELETON[3] == 24
    assert item["keypoints_2d"][4].tolist() == pytest.approx([99.625, 49.625])
    assert item["joints_3d"][4].tolist() == pytest.approx([95.233, -47.694, 700.0], abs=1e-3)
    assert item["joints_3d"][4].tolist() == pytest.approx((xyz[0, 0, 24] * [1, -1, 1]).tolist(), abs=1e-3)
    fx, fy, cx, cy = item["intrinsics"].tolist()
    assert (fx, cx) == pytest.approx((588.03 / 4, 79.625))
    assert item["keypoints_2d"][4, 0].item() == pytest.approx(fx * 95.233 / 700.0 + cx, abs=1e-3)
    assert item["visibility"].all() and item["mask"].sum() > 0
    assert item["keypose"].item() == -1 and item["handedness"].item() == 1 and bool(item["has_hand"])
    assert ds.tensors()["depth"].shape == (2, 1, 120, 160)


def test_nyu_bad_input_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="joint_data.mat"):
        NYUHands(tmp_path, "train")
    _write_nyu(tmp_path)
    with pytest.raises(UsageError, match="whole-factor"):
        NYUHands(tmp_path, "train", height=100, width=160)


def test_data_cli_preview_writes_a_png(tmp_path, capsys):
    rc = main(["data", "--preview", "4", "--size", "4", "--out", str(tmp_path / "out"), "--cache-dir", str(tmp_path)])
    assert rc == 0
    path = tmp_path / "out" / "synthetic_val_s0_4.png"
    assert path.exists() and str(path) in capsys.readouterr().out
    img = Image.open(path)
    assert img.size == (4 * 320 + 3 * 2, 240)
    assert np.asarray(img).std() > 10  # drawn, not blank
    assert main(["data", "--size", "0", "--cache-dir", str(tmp_path)]) == 2
