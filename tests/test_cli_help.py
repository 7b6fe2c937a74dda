"""``bench.py --help`` answers at once: building the parser (every subcommand's flags) imports no torch."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_help_imports_no_torch():
    code = ("import sys, effbench, effbench.cli; effbench.cli.build_parser(); "
            "print(sorted(m for m in ('torch', 'numpy', 'pandas', 'matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_help_lists_every_subcommand():
    out = subprocess.run([sys.executable, "bench.py", "--help"], cwd=ROOT, capture_output=True, text=True, check=True)
    for command in ("list", "profile", "train", "gate", "run", "report", "data"):
        assert command in out.stdout


def test_every_subcommand_help_renders():
    # A "%" in a help string (e.g. "under 5% of the compute") crashes argparse's --help with a TypeError.
    for command in ("list", "profile", "train", "gate", "run", "report", "data"):
        out = subprocess.run([sys.executable, "bench.py", command, "--help"], cwd=ROOT, capture_output=True, text=True)
        assert out.returncode == 0, (command, out.stderr[-500:])
        assert out.stdout.startswith("usage: bench.py " + command)
