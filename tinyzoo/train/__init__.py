"""Training conveniences shared by the examples: progress bar, metrics log, checkpoints of a run, CLI flags,
and a classifier fit/predict/accuracy loop on arrays."""

from tinyzoo.train import data_parallel
from tinyzoo.train.classify import accuracy, fit_classifier, predict
from tinyzoo.train.cli import check_device, example_parser, run_main, trace_step
from tinyzoo.train.metrics import MetricsLog
from tinyzoo.train.progress import ProgressBar, progress
from tinyzoo.train.state import load_training, save_training

__all__ = [
    "MetricsLog",
    "ProgressBar",
    "accuracy",
    "check_device",
    "data_parallel",
    "example_parser",
    "fit_classifier",
    "load_training",
    "predict",
    "progress",
    "run_main",
    "save_training",
    "trace_step",
]
