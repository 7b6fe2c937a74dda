"""``--module`` from a user's own folder: ``profile`` and ``gate`` load the same factory the same way and give the
model one name (the factory's), whether it is named as ``module:factory`` or as ``path/to/file.py:factory``.

The toy is conv3x3(1 -> 4, no bias), ReLU at a 1x1x8x8 input: 36 parameters, 64 * 36 = 2,304 MACs.
"""

import json
import sys

import pytest

from effbench.cli import main

TOY = '''
from torch import nn


def toy():
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, bias=False), nn.ReLU())
'''


@pytest.fixture
def user_folder(tmp_path, monkeypatch):
    """A folder holding toymod.py (and models/toyfile.py), as the current folder; sys.path as a user's would be:
    without that folder on it."""
    (tmp_path / "toymod.py").write_text(TOY)
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "toyfile.py").write_text(TOY)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    for name in ("toymod", "toyfile"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    return tmp_path


@pytest.mark.parametrize("spec", ["toymod:toy", "models/toyfile.py:toy"])
def test_profile_and_gate_module_agree_on_one_name(user_folder, capsys, spec):
    shape = ["--module", spec, "--input-shape", "1,1,8,8", "--json", "--no-latency"]
    assert main(["profile", *shape, "--no-peers"]) == 0
    (profiled,) = json.loads(capsys.readouterr().out)
    (user_folder / "effbench.toml").write_text("[budgets.toy]\nmax_params = 36\nmax_macs = 2304\n")
    assert main(["gate", *shape]) == 0
    gated = json.loads(capsys.readouterr().out)["models"]
    assert profiled["model"] == "toy" and list(gated) == ["toy"]
    assert (profiled["params"], profiled["macs"]) == (gated["toy"]["params"], gated["toy"]["macs"]) == (36, 2304)
