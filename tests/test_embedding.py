"""Embedding without PyTorch (or numba): a fresh venv holding only NumPy and tinyzoo's wheel loads checkpoints
of the MLP, CNN, GAT and PonderNet models and predicts exactly what the full install predicts.

Marked `network` (it fetches NumPy and setuptools from the package index); deselect with -m "not network".
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import tinyzoo as tz

REPO = Path(__file__).resolve().parent.parent

BUILD_AND_PREDICT = textwrap.dedent('''
    """Rebuild each model from its constructor, load its checkpoint, predict; the same code runs in both envs."""
    import sys, warnings
    import numpy as np
    import tinyzoo as tz
    from tinyzoo.models.cnn import SimpleCNN
    from tinyzoo.models.gat import GAT
    from tinyzoo.models.graph_common import Graph
    from tinyzoo.models.mlp import MLP
    from tinyzoo.models.ponder_net import PonderGRU

    folder = sys.argv[1]
    inputs = tz.load(f"{folder}/inputs.npz")
    models = {
        "mlp": lambda: MLP([784, 64, 10]),
        "cnn": lambda: SimpleCNN(),
        "gat": lambda: GAT(12, 3, hidden=4, heads=2),
        "ponder": lambda: PonderGRU(8, 16, 6),
    }
    outputs = {}
    with warnings.catch_warnings(record=True) as caught, tz.no_grad():
        warnings.simplefilter("always")
        for name, build in models.items():
            model = build().eval()
            model.load_state_dict(tz.load(f"{folder}/{name}.npz"))
            if name == "gat":
                graph = Graph(inputs["src"], inputs["dst"], 6)
                outputs[name] = model(tz.tensor(inputs["nodes"]), graph).numpy()
            elif name == "ponder":
                outputs[name] = model(tz.tensor(inputs["parity"])).logits.numpy()
            else:
                outputs[name] = model(tz.tensor(inputs["images"])).numpy()
    tz.save(outputs, f"{folder}/outputs_{sys.argv[2]}.npz")
    print(sum("numba" in str(w.message) for w in caught))
''')


def run(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    """Run a command; fail the test with its output if it fails."""
    done = subprocess.run(args, capture_output=True, text=True, timeout=600, **kwargs)
    assert done.returncode == 0, f"{' '.join(map(str, args))}\n{done.stdout}\n{done.stderr}"
    return done


@pytest.mark.network
def test_numpy_only_install_predicts_like_the_full_install(tmp_path):
    tz.manual_seed(0)
    rng = np.random.default_rng(0)
    src = np.array([0, 1, 2, 3, 4, 5, 1, 2, 0, 3, 4, 5])
    dst = np.array([0, 1, 2, 3, 4, 5, 0, 1, 2, 4, 5, 3])
    order = np.argsort(dst, kind="stable")
    tz.save({"images": rng.random((3, 1, 28, 28), dtype=np.float32), "nodes": rng.random((6, 12), dtype=np.float32),
             "parity": rng.choice(np.array([-1.0, 0.0, 1.0], np.float32), (4, 8)), "src": src[order],
             "dst": dst[order]}, tmp_path / "inputs.npz")  # fmt: skip
    script = tmp_path / "predict.py"
    script.write_text(BUILD_AND_PREDICT)

    from tinyzoo.models.cnn import SimpleCNN
    from tinyzoo.models.gat import GAT
    from tinyzoo.models.mlp import MLP
    from tinyzoo.models.ponder_net import PonderGRU

    for name, model in {"mlp": MLP([784, 64, 10]), "cnn": SimpleCNN(), "gat": GAT(12, 3, hidden=4, heads=2),
                        "ponder": PonderGRU(8, 16, 6)}.items():  # fmt: skip
        tz.save(dict(model.state_dict()), tmp_path / f"{name}.npz")

    wheels, venv = tmp_path / "wheels", tmp_path / "venv"
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(REPO)])
    run([sys.executable, "-m", "venv", str(venv)])
    python = venv / "bin" / "python"
    run([str(python), "-m", "pip", "install", "-q", "numpy", "--only-binary", ":all:"])
    run([str(python), "-m", "pip", "install", "-q", "--no-deps", *map(str, wheels.glob("*.whl"))])
    listed = run([str(python), "-m", "pip", "list", "--format", "freeze"]).stdout
    assert "numba" not in listed and "torch" not in listed and "scipy" not in listed

    numba_warnings = run([str(python), str(script), str(tmp_path), "slim"], cwd=tmp_path).stdout.strip()
    tinyzoo_under_test = {**os.environ, "PYTHONPATH": str(Path(tz.__file__).resolve().parent.parent)}
    run([sys.executable, str(script), str(tmp_path), "full"], cwd=tmp_path, env=tinyzoo_under_test)
    slim, full = tz.load(tmp_path / "outputs_slim.npz"), tz.load(tmp_path / "outputs_full.npz")
    for name in full:
        np.testing.assert_allclose(slim[name], full[name], atol=1e-6, err_msg=name)
    assert numba_warnings == "1", "the NumPy fallback should warn exactly once"
