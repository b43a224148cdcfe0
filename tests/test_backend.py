"""The backend's process-wide memory option: freed arrays stay mapped for the next step."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

# A training step's pattern: many large arrays alive at once (the tape), all freed when backward ends.
# Prints the page faults of three steps after a first one has warmed the heap.
STEPS = """
import resource, sys
import numpy as np
from tinyzoo import backend
if sys.argv[1] == "keep":
    assert backend.keep_freed_memory()
def step():
    arrays = [np.ones(1 << 20) for _ in range(16)]  # 16 × 8 MiB, every page written
    del arrays
step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(3):
    step()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def page_faults(mode: str) -> int:
    """Minor page faults of three steps in a fresh interpreter, with (keep) or without the option."""
    result = subprocess.run([sys.executable, "-c", STEPS, mode], capture_output=True, text=True, check=True)
    return int(result.stdout)


@pytest.mark.skipif(sys.platform != "linux" or platform.libc_ver()[0] != "glibc", reason="glibc malloc only")
def test_keep_freed_memory_stops_the_page_faults_of_each_step():
    default = page_faults("default")
    if default < 10_000:
        pytest.skip(f"this malloc already keeps freed memory ({default} page faults in three steps)")
    assert page_faults("keep") < default / 100, "keep_freed_memory() did not keep the freed arrays mapped"
