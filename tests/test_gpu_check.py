"""The GPU pass, scripts/gpu_check.sh, run dry on the CPU: the same steps with tiny budgets, so that a typo in
it cannot waste the short window on a GPU machine, and its time limits checked against that window."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "gpu_check.sh"
STEPS = ("install", "info", "gpu_tests", "nccl", "ponder", "gat", "capsnet", "bench")


def test_the_gpu_pass_fits_its_window_and_puts_the_most_valuable_steps_first():
    steps = re.findall(r'^    "(\w+)\|(\d+)\|(\d+)\|', SCRIPT.read_text(), flags=re.M)
    assert tuple(name for name, _, _ in steps) == STEPS
    assert sum(int(gpu) for _, gpu, _ in steps) <= 480


def test_the_dry_run_of_the_gpu_pass_passes_on_the_cpu(tmp_path):
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(["bash", str(SCRIPT), "--dry-run", str(tmp_path)], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=900)
    summary = (tmp_path / "summary.txt").read_text()
    assert result.returncode == 0, summary + result.stderr
    assert re.search(r"the GPU pass's time limits add up to (\d+) s of a 480 s window", summary)
    for step in STEPS:
        assert re.search(rf"^--- {step}: ok", summary, flags=re.M), f"{step} did not pass:\n{summary}"
        assert (tmp_path / f"{step}.txt").stat().st_size > 0
    assert "test accuracy" in (tmp_path / "ponder.txt").read_text()
    assert list(tmp_path.glob("*-quick.json")), "the bench wrote no results"
    assert f"0 of {len(STEPS)} steps failed" in summary
