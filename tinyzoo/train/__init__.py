"""Training conveniences shared by the examples: progress bar, metrics log, checkpoints of a run, CLI flags."""

from tinyzoo.train.cli import check_device, example_parser, run_main, trace_step
from tinyzoo.train.metrics import MetricsLog
from tinyzoo.train.progress import ProgressBar, progress
from tinyzoo.train.state import load_training, save_training

__all__ = [
    "MetricsLog",
    "ProgressBar",
    "check_device",
    "example_parser",
    "load_training",
    "progress",
    "run_main",
    "save_training",
    "trace_step",
]
