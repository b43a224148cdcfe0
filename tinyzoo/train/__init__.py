"""Training conveniences shared by the examples: progress bar, metrics log, checkpoints of a run, CLI flags,
the bookkeeping of a run (`TrainingRun`), early stopping, and a classifier fit/predict/accuracy loop on arrays.

The recipes shared by several examples (Cora node classification, image classifiers, character language
models) live in `tinyzoo.train.tasks`; unlike the rest of this package they build on `tinyzoo.models`, so
this module does not import them.
"""

from tinyzoo.train import data_parallel
from tinyzoo.train.classify import accuracy, fit_classifier, predict
from tinyzoo.train.cli import check_device, example_parser, run_main, trace_step
from tinyzoo.train.early_stopping import EarlyStopping, TrainingConfig
from tinyzoo.train.metrics import MetricsLog
from tinyzoo.train.progress import ProgressBar, progress
from tinyzoo.train.run import TrainingRun
from tinyzoo.train.state import load_training, save_training

__all__ = [
    "EarlyStopping",
    "MetricsLog",
    "ProgressBar",
    "TrainingConfig",
    "TrainingRun",
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
