"""The zoo's catalogue: every model with its file, example script and data set (used by `python -m tinyzoo`)."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent


def _examples_folder() -> Path:
    """The example scripts: tinyzoo/examples/ in an installed wheel, examples/ beside the package in a checkout."""
    installed = PACKAGE / "examples"  # pyproject maps the tinyzoo.examples package onto examples/
    return installed if installed.is_dir() else PACKAGE.parent / "examples"


EXAMPLES = _examples_folder()


@dataclass(frozen=True)
class Entry:
    """One model of the zoo."""

    name: str
    module: str  # tinyzoo.models.<module>
    example: str  # examples/<example>.py
    data: str
    paper: str

    def available(self) -> bool:
        """True when the model file and its example are both present."""
        model_file = PACKAGE / "models" / f"{self.module}.py"
        return model_file.exists() and (EXAMPLES / f"{self.example}.py").exists()

    def load(self):
        """Import the model's module."""
        return importlib.import_module(f"tinyzoo.models.{self.module}")


CATALOGUE = [
    Entry("ponder_net", "ponder_net", "ponder_parity", "parity (generated)", "Banino et al. 2021"),
    Entry("mlp", "mlp", "mlp_mnist", "MNIST", "—"),
    Entry("cnn", "cnn", "cnn_mnist", "MNIST / CIFAR-10 (user path)", "LeCun et al. 1998"),
    Entry("resnet18", "resnet", "resnet_mnist", "MNIST 32×32 / CIFAR-10 (user path)", "He et al. 2016"),
    Entry("char_rnn", "char_rnn", "char_rnn_shakespeare", "Tiny Shakespeare", "Karpathy 2015"),
    Entry("hyper_lstm", "hyper_lstm", "hyperlstm_shakespeare", "Tiny Shakespeare", "Ha, Dai & Le 2016"),
    Entry("rhn", "rhn", "hyperlstm_shakespeare", "Tiny Shakespeare", "Zilly et al. 2017"),
    Entry("gat", "gat", "gat_cora", "Cora", "Veličković et al. 2018"),
    Entry("gatv2", "gatv2", "gat_cora", "Cora", "Brody et al. 2022"),
    Entry("gcn", "gcn", "gcn_cora", "Cora", "Kipf & Welling 2017"),
    Entry("capsnet", "capsnet", "capsnet_mnist", "MNIST", "Sabour, Frosst & Hinton 2017"),
    Entry("autoencoder", "autoencoder", "autoencoder_mnist", "MNIST", "Hinton & Salakhutdinov 2006"),
    Entry("gan", "gan", "gan_mnist", "MNIST", "Goodfellow et al. 2014; Radford et al. 2016"),
    Entry("rbm", "rbm", "rbm_mnist", "MNIST (binarised)", "Hinton 2002; Hinton et al. 2006"),
    Entry("pointer_net", "pointer_net", "pointer_sort", "sorting (generated)", "Vinyals et al. 2015"),
    Entry("dqn", "dqn", "dqn_cartpole", "CartPole (NumPy)", "Mnih et al. 2015"),
    Entry("sketch_rnn", "sketch_rnn", "sketch_rnn", "KanjiVG strokes", "Ha & Eck 2017"),
    Entry("transformer", "transformer", "transformer_reverse", "string reversal (generated)", "Vaswani et al. 2017"),
    Entry("gpt", "gpt", "gpt_shakespeare", "Tiny Shakespeare", "Radford et al. 2018"),
    Entry("bert", "bert", "bert_shakespeare", "Tiny Shakespeare", "Devlin et al. 2019"),
    Entry("vit", "vit", "vit_mnist", "MNIST", "Dosovitskiy et al. 2021"),
    Entry("xlnet", "xlnet", "xlnet_sequence", "generated sequences", "Yang et al. 2019"),
]


def find(name: str) -> Entry:
    """The catalogue entry called `name` (KeyError listing the names otherwise)."""
    for entry in CATALOGUE:
        if entry.name == name:
            return entry
    raise KeyError(f"no model {name!r}; choose from: {', '.join(e.name for e in CATALOGUE)}")
