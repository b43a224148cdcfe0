"""`python -m tinyzoo`: list, info, data, explain and run."""

from __future__ import annotations

import pytest

from tinyzoo import zoo
from tinyzoo.__main__ import main


def test_list_info_data(capsys):
    assert main(["list"]) == 0
    listing = capsys.readouterr().out
    assert "ponder_net" in listing and "examples/ponder_parity.py" in listing
    assert main(["info"]) == 0 and "GPU available" in capsys.readouterr().out
    assert main(["data"]) == 0 and "cache folder" in capsys.readouterr().out


def test_explain_prints_tree_parameters_and_flops(capsys):
    assert main(["explain", "ponder_net"]) == 0
    text = capsys.readouterr().out
    assert "GRUCell" in text and "14,338" in text and "FLOPs" in text


@pytest.mark.parametrize("entry", zoo.CATALOGUE, ids=lambda e: e.name)
def test_every_catalogue_model_can_be_explained(entry, capsys, monkeypatch):
    model, sample = entry.load().demo()
    monkeypatch.setattr(entry.load(), "demo", lambda: (model, sample))  # built once: explain uses this one
    assert main(["explain", entry.name]) == 0, capsys.readouterr().err
    text = capsys.readouterr().out
    assert f"{model.num_parameters():,} parameters" in text and "FLOPs per forward" in text


def test_run_example_and_unknown_names(capsys):
    assert main(["run", "ponder_net", "--steps", "5", "--test-size", "50", "--n-elems", "4", "--max-steps", "3"]) == 0
    assert "test accuracy" in capsys.readouterr().out
    assert main(["run", "no_such_example"]) == 2
    assert main(["explain", "no_such_model"]) == 2
