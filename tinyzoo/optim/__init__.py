"""Optimizers, learning-rate schedulers and gradient clipping with PyTorch's semantics.

    opt = tinyzoo.optim.AdamW(model.parameters(), lr=3e-4)
    sched = tinyzoo.optim.WarmupCosine(opt, warmup_steps=100, total_steps=10_000)
    loss.backward()
    tinyzoo.optim.clip_grad_norm_(model.parameters(), 1.0)
    opt.step(); opt.zero_grad(); sched.step()

`tinyzoo.optim.lr_scheduler` is the schedulers module under torch's name, so ported imports work.
"""

from tinyzoo.optim import schedulers as lr_scheduler
from tinyzoo.optim.clip import clip_grad_norm_, clip_grad_value_
from tinyzoo.optim.optimizers import SGD, Adagrad, Adam, AdamW, Optimizer, RMSprop
from tinyzoo.optim.schedulers import (
    CosineAnnealingLR,
    ExponentialLR,
    LinearWarmup,
    LRScheduler,
    ReduceLROnPlateau,
    StepLR,
    WarmupCosine,
)

__all__ = [
    "SGD",
    "Adagrad",
    "Adam",
    "AdamW",
    "CosineAnnealingLR",
    "ExponentialLR",
    "LRScheduler",
    "LinearWarmup",
    "Optimizer",
    "RMSprop",
    "ReduceLROnPlateau",
    "StepLR",
    "WarmupCosine",
    "clip_grad_norm_",
    "clip_grad_value_",
    "lr_scheduler",
]
