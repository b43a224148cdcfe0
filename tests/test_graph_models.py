"""Graph models: GCN, GAT and GATv2 (tinyzoo/models/gcn.py, gat.py, gatv2.py, graph_common.py).

Every layer is checked against a dense N×N formulation written here (the models themselves never build
one), gradchecked in float64 with both kernel implementations, and trained a few epochs on Cora. The
static-vs-dynamic attention argument of GATv2 is tested both ways: explicit GATv2 weights under which
every query ranks its neighbours differently, and a property test that no GAT weights can do that.
The examples run end to end with tiny settings, and a checkpointed run resumes bit for bit.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinyzoo as tz
from tinyzoo import nn
from tinyzoo.models.gat import GAT, GATLayer
from tinyzoo.models.gatv2 import GATv2, GATv2Layer
from tinyzoo.models.gcn import GCN, GCNLayer
from tinyzoo.models.graph_common import HeadDropout, SparseFeatures, add_self_loops, make_graph, project
from tinyzoo.train import EarlyStopping, MetricsLog, TrainingConfig
from tinyzoo.train.tasks.cora import CoraTask, pca_2d, train_node_classifier

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
FAST = settings(max_examples=15, deadline=None)
TOL = {"rtol": 1e-9, "atol": 1e-10}


def load_example(name: str):
    """Import examples/<name>.py as a module (examples are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# =================================================================================================
# Small graphs and the dense reference
# =================================================================================================
# 6 nodes, an undirected path 0-1-2-3-4 with a chord 1-4, and node 5 isolated (it only has its self-loop).
SIX_EDGES = np.array([[0, 1, 1, 2, 2, 3, 3, 4, 1, 4], [1, 0, 2, 1, 3, 2, 4, 3, 4, 1]])


def six_node_graph():
    return make_graph(SIX_EDGES, 6)


@st.composite
def random_graphs(draw: st.DrawFn) -> tuple[np.ndarray, int, int]:
    """(edges [2, E] without duplicates, num_nodes, seed): random directed graphs of 1-7 nodes."""
    n = draw(st.integers(1, 7))
    pairs = draw(st.sets(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=20))
    edges = np.array(sorted(pairs), dtype=np.int64).reshape(-1, 2).T
    return edges, n, draw(st.integers(0, 2**31 - 1))


def adjacency(graph) -> np.ndarray:
    """Dense mask [N, N]: mask[i, j] when there is an edge j → i."""
    mask = np.zeros((graph.num_nodes, graph.num_nodes), dtype=bool)
    mask[graph.dst, graph.src] = True
    return mask


def dense_scores(layer, x: np.ndarray) -> np.ndarray:
    """e[i, j, head] for every pair of nodes, with NumPy and the layer's weights."""
    heads, f = layer.heads, layer.out_features

    def leaky(v):
        return np.where(v > 0, v, layer.negative_slope * v)

    if isinstance(layer, GATv2Layer):
        query = (x @ layer.linear_query.weight.numpy().T).reshape(-1, heads, f)
        linear_neighbour = layer.linear_query if layer.share_weights else layer.linear_neighbour
        neighbour = (x @ linear_neighbour.weight.numpy().T).reshape(-1, heads, f)
        return (leaky(query[:, None] + neighbour[None, :]) * layer.attn.numpy()).sum(-1)
    z = (x @ layer.linear.weight.numpy().T).reshape(-1, heads, f)
    as_query = (z * layer.attn_query.numpy()).sum(-1)  # [N, heads]
    as_neighbour = (z * layer.attn_neighbour.numpy()).sum(-1)
    return leaky(as_query[:, None, :] + as_neighbour[None, :, :])


def dense_attention_layer(layer, x: np.ndarray, graph) -> tuple[np.ndarray, np.ndarray]:
    """(output, α [N, N, heads]) of a GAT/GATv2 layer as a masked softmax over an N×N score matrix."""
    heads, f = layer.heads, layer.out_features
    values_linear = layer.linear if isinstance(layer, GATLayer) else (
        layer.linear_query if layer.share_weights else layer.linear_neighbour
    )  # fmt: skip
    values = (x @ values_linear.weight.numpy().T).reshape(-1, heads, f)  # [N, heads, F]
    mask = adjacency(graph)[:, :, None]
    scores = np.where(mask, dense_scores(layer, x), -np.inf)
    alpha = np.exp(scores - scores.max(axis=1, keepdims=True)) * mask
    alpha = alpha / alpha.sum(axis=1, keepdims=True)
    out = np.einsum("ijh,jhf->ihf", alpha, values)
    out = out.reshape(len(x), heads * f) if layer.concat else out.mean(axis=1)
    return out + layer.bias.numpy(), alpha


def seeded(seed: int) -> np.random.Generator:
    tz.manual_seed(seed)
    return np.random.default_rng(seed)


# =================================================================================================
# Graph helpers
# =================================================================================================
def test_make_graph_adds_one_self_loop_per_node_and_sorts_by_destination() -> None:
    edges = np.array([[2, 0, 1, 1], [0, 2, 1, 0]])  # includes a self-loop 1 → 1 already
    graph = make_graph(edges, 4)
    assert graph.num_nodes == 4
    assert np.all(np.diff(graph.dst) >= 0)
    pairs = set(zip(graph.src.tolist(), graph.dst.tolist()))
    assert pairs == {(2, 0), (0, 2), (1, 0), (0, 0), (1, 1), (2, 2), (3, 3)}
    assert add_self_loops(edges, 4).shape == (2, 3 + 4)


def test_sparse_features_match_the_dense_matrix() -> None:
    rng = seeded(0)
    x = rng.standard_normal((5, 7)) * (rng.random((5, 7)) < 0.3)
    weight = tz.tensor(rng.standard_normal((3, 7)))
    sparse = SparseFeatures.from_dense(x)
    np.testing.assert_allclose(sparse.matmul(weight).numpy(), x @ weight.numpy().T, **TOL)
    model = GAT(7, 3, hidden=2, heads=2).double().eval()
    graph = make_graph(np.array([[0, 1, 3], [1, 2, 4]]), 5)
    np.testing.assert_allclose(model(sparse, graph).numpy(), model(tz.tensor(x), graph).numpy(), **TOL)


def per_head_copies(seed: int, heads: int = 3) -> tuple[SparseFeatures, np.ndarray]:
    """Sparse features with a different copy of the values per head, and the same as a dense [N, heads, D] array."""
    rng = seeded(seed)
    x = rng.standard_normal((5, 7)) * (rng.random((5, 7)) < 0.4)
    sparse = SparseFeatures.from_dense(x)
    values = rng.standard_normal((len(sparse.rows), heads))
    dense = np.zeros((5, heads, 7))
    dense[sparse.rows, :, sparse.cols] = values
    return sparse._replace(values=tz.tensor(values)), dense


def test_per_head_copies_of_the_features_meet_their_own_head_of_the_weights() -> None:
    sparse, dense = per_head_copies(4)
    linear = nn.Linear(7, 3 * 2, bias=False).double()  # 3 heads × 2 features
    expected = np.einsum("nhd,hfd->nhf", dense, linear.weight.numpy().reshape(3, 2, 7)).reshape(5, 6)
    np.testing.assert_allclose(project(linear, sparse).numpy(), expected, **TOL)
    np.testing.assert_allclose(project(linear, tz.tensor(dense)).numpy(), expected, **TOL)
    tz.gradcheck(lambda w: sparse.matmul(w), [linear.weight])
    tz.gradcheck(lambda x, w: project(linear, x), [tz.tensor(dense, requires_grad=True), linear.weight])


def test_head_dropout_draws_one_mask_per_head_and_one_head_is_plain_dropout() -> None:
    x = tz.ones(50, 40)
    dropped = HeadDropout(0.5, heads=4).train()(x).numpy()  # [50, 4, 40]
    assert dropped.shape == (50, 4, 40) and set(np.unique(dropped)) == {0.0, 2.0}
    masks = dropped > 0
    assert all((masks[:, h] != masks[:, 0]).mean() > 0.3 for h in range(1, 4))  # independent masks
    sparse = SparseFeatures.from_dense(np.eye(6, 9, dtype=np.float32))
    assert HeadDropout(0.5, heads=4).train()(sparse).values.shape == (6, 4)
    assert HeadDropout(0.5, heads=4).eval()(x) is x
    tz.manual_seed(5)
    plain = nn.Dropout(0.5)(x).numpy()
    tz.manual_seed(5)
    np.testing.assert_array_equal(HeadDropout(0.5).train()(x).numpy(), plain)  # GCN's dropout, unchanged


def test_pca_2d_finds_the_directions_of_largest_variance() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, 2)) * [5.0, 0.1] @ np.array([[0.6, 0.8], [-0.8, 0.6]])  # rotated
    x = np.concatenate([x, np.zeros((200, 3))], axis=1)
    points = pca_2d(x)
    assert points.shape == (200, 2)
    assert points[:, 0].std() > 20 * points[:, 1].std()
    assert abs(np.corrcoef(points[:, 0], x[:, 0] * 0.6 + x[:, 1] * 0.8)[0, 1]) > 0.9999  # the long axis


# =================================================================================================
# Against the dense formulas
# =================================================================================================
@FAST
@given(random_graphs(), st.sampled_from(["gat", "gatv2", "gatv2-shared"]), st.booleans())
def test_sparse_attention_equals_dense_masked_softmax(graph_data, kind: str, concat: bool) -> None:
    edges, n, seed = graph_data
    rng = seeded(seed)
    graph = make_graph(edges, n)
    if kind == "gat":
        layer = GATLayer(3, 2, heads=3, concat=concat)
    else:
        layer = GATv2Layer(3, 2, heads=3, concat=concat, share_weights=kind == "gatv2-shared")
    layer = layer.double().eval()
    layer.bias.data = rng.standard_normal(layer.bias.shape)
    x = rng.standard_normal((n, 3))
    out, alpha = layer.attend(tz.tensor(x), graph)
    dense_out, dense_alpha = dense_attention_layer(layer, x, graph)
    np.testing.assert_allclose(out.numpy(), dense_out, **TOL)
    np.testing.assert_allclose(alpha.numpy(), dense_alpha[graph.dst, graph.src], **TOL)


def test_gcn_propagation_matches_the_dense_normalised_adjacency() -> None:
    rng = seeded(1)
    graph = six_node_graph()
    layer = GCNLayer(4, 3).double()
    layer.bias.data = rng.standard_normal(3)
    x = rng.standard_normal((6, 4))
    a_hat = np.zeros((6, 6))
    a_hat[SIX_EDGES[1], SIX_EDGES[0]] = 1
    a_hat += np.eye(6)  # A + I
    d = a_hat.sum(axis=1)
    a_hat = a_hat / np.sqrt(d[:, None] * d[None, :])  # D^-1/2 (A + I) D^-1/2
    expected = a_hat @ x @ layer.linear.weight.numpy().T + layer.bias.numpy()
    np.testing.assert_allclose(layer(tz.tensor(x), graph).numpy(), expected, **TOL)


# =================================================================================================
# Gradients and shapes
# =================================================================================================
TINY_MODELS = {
    "gcn": lambda: GCN(3, 4, hidden=5),
    "gat": lambda: GAT(3, 4, hidden=2, heads=2, out_heads=2),
    "gatv2": lambda: GATv2(3, 4, hidden=2, heads=2, out_heads=2),
    "gatv2-shared": lambda: GATv2(3, 4, hidden=2, heads=2, share_weights=True),
}


@pytest.mark.parametrize("impl", ["reference", "numba"])
@pytest.mark.parametrize("name", sorted(TINY_MODELS))
def test_gradcheck_tiny_models(name: str, impl: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TINYZOO_KERNELS", impl)
    rng = seeded(2)
    model = TINY_MODELS[name]().double().eval()  # eval: no dropout, so the function is deterministic
    graph = six_node_graph()
    x = tz.tensor(rng.standard_normal((6, 3)), requires_grad=True)
    params = list(model.parameters())
    tz.gradcheck(lambda x, *_: model(x, graph), [x, *params])


def test_gradcheck_through_sparse_features() -> None:
    rng = seeded(3)
    model = GCN(5, 2, hidden=3).double().eval()
    sparse = SparseFeatures.from_dense(rng.standard_normal((6, 5)) * (rng.random((6, 5)) < 0.5))
    graph = six_node_graph()
    tz.gradcheck(lambda *_: model(sparse, graph), list(model.parameters()))


@pytest.mark.parametrize("name", sorted(TINY_MODELS))
def test_output_shapes(name: str) -> None:
    model = TINY_MODELS[name]()
    x = tz.randn(6, 3)
    hidden = {"gcn": 5, "gat": 4, "gatv2": 4, "gatv2-shared": 4}[name]
    assert model.embed(x, six_node_graph()).shape == (6, hidden)
    assert model(x, six_node_graph()).shape == (6, 4)
    if name != "gcn":
        first, second = model.eval().attention(x, six_node_graph())
        edges = len(six_node_graph().src)
        assert first.shape == (edges, 2) and second.shape[0] == edges
        np.testing.assert_allclose(np.bincount(six_node_graph().dst, weights=first[:, 0]), 1, rtol=1e-5)


def test_gcn_decays_only_the_first_layer_weights_and_gat_every_parameter() -> None:
    gcn = GCN(3, 2)
    gcn_groups = gcn.parameter_groups(5e-4)
    assert [len(g["params"]) for g in gcn_groups] == [1, 3] and gcn_groups[0]["weight_decay"] == 5e-4
    assert gcn_groups[0]["params"][0] is gcn.first.linear.weight
    for model in (GAT(3, 2), GATv2(3, 2)):
        (group,) = model.parameter_groups(5e-4)  # biases too, as the GAT reference code does
        assert group["weight_decay"] == 5e-4 and len(group["params"]) == len(list(model.parameters()))


def test_attention_layers_drop_out_the_transformed_features_too() -> None:
    tz.manual_seed(6)
    layer = GATLayer(4, 3, heads=2, dropout=0.5).train()
    layer.attention_dropout.p = 0.0  # what randomness remains comes from dropping W h
    x, graph = tz.randn(6, 4), six_node_graph()
    assert not np.allclose(layer(x, graph).numpy(), layer(x, graph).numpy())
    layer.value_dropout.p = 0.0
    np.testing.assert_array_equal(layer(x, graph).numpy(), layer(x, graph).numpy())


# =================================================================================================
# Static (GAT) versus dynamic (GATv2) attention
# =================================================================================================
def complete_graph(n: int):
    """Every ordered pair, self-loops included: every node has every node as a neighbour."""
    src, dst = np.meshgrid(np.arange(n), np.arange(n))
    return make_graph(np.stack([src.ravel(), dst.ravel()]), n)


def score_matrix(layer, x: np.ndarray, graph) -> np.ndarray:
    """The layer's own edge scores e_ij (through the sparse code) laid out as [query i, neighbour j] for head 0."""
    with tz.no_grad():
        scores, _ = layer.edge_scores(tz.tensor(x), graph)
    dense = np.full((graph.num_nodes, graph.num_nodes), np.nan)
    dense[graph.dst, graph.src] = scores.numpy()[:, 0]
    return dense


def test_gatv2_can_rank_neighbours_differently_for_every_query() -> None:
    # 1-D features x = 0, 1, 2. With W_l = [1, -1]ᵀ, W_r = [-1, 1]ᵀ and a = [-1, -1], the two hidden units
    # are ±(x_i - x_j) and e_ij = -(LeakyReLU(d) + LeakyReLU(-d)) = -0.8 |x_i - x_j|: every node attends
    # most to the neighbour most like itself, i.e. to itself, so each query has a different favourite.
    layer = GATv2Layer(1, 2, heads=1).double()
    layer.linear_query.weight.data = np.array([[1.0], [-1.0]])
    layer.linear_neighbour.weight.data = np.array([[-1.0], [1.0]])
    layer.attn.data = np.array([[-1.0, -1.0]])
    x = np.array([[0.0], [1.0], [2.0]])
    e = score_matrix(layer, x, complete_graph(3))
    np.testing.assert_allclose(e, -0.8 * np.abs(x - x.T))
    assert list(e.argmax(axis=1)) == [0, 1, 2]  # query i's top neighbour is i: three different rankings


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(2, 6), st.sampled_from([0.2, 0.01]))
def test_gat_ranks_neighbours_the_same_for_every_query(seed: int, n: int, slope: float) -> None:
    # e_ij = LeakyReLU(a_lᵀ W x_i + a_rᵀ W x_j) with LeakyReLU strictly increasing: whatever the weights,
    # if query i scores neighbour j above k then no query i' scores k above j.
    rng = seeded(seed)
    layer = GATLayer(3, 4, heads=1, negative_slope=slope).double()
    for p in layer.parameters():
        p.data = rng.standard_normal(p.shape) * rng.uniform(0.1, 10)
    e = score_matrix(layer, rng.standard_normal((n, 3)), complete_graph(n))
    above = e[:, :, None] > e[:, None, :]  # above[i, j, k]: query i prefers j to k
    assert not (above.any(axis=0) & above.transpose(0, 2, 1).any(axis=0)).any()
    assert len({int(row.argmax()) for row in e if np.ptp(row) > 0}) <= 1  # one favourite for everybody


# =================================================================================================
# Training
# =================================================================================================
def two_communities(seed: int, n: int = 40) -> CoraTask:
    """A small task like Cora's: two classes, dense edges inside a class, few across, noisy features."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    same = labels[:, None] == labels[None, :]
    links = np.triu(rng.random((n, n)) < np.where(same, 0.3, 0.03), 1)
    edges = np.stack(np.nonzero(links | links.T))
    x = np.eye(2)[labels] @ rng.standard_normal((2, 8)) * 0.5 + rng.standard_normal((n, 8))
    nodes = rng.permutation(n)
    return CoraTask(tz.tensor(x.astype(np.float32)), tz.tensor(labels), make_graph(edges, n),
                    np.sort(nodes[:10]), np.sort(nodes[10:20]), np.sort(nodes[20:]), ("a", "b"))  # fmt: skip


@pytest.mark.parametrize("model_type", [GCN, GAT, GATv2])
def test_short_training_lowers_the_loss(model_type) -> None:
    tz.manual_seed(0)
    task = two_communities(0)
    model = model_type(8, 2, dropout=0.1)  # the papers' 0.5-0.6 is for Cora's 1,433 features
    log = MetricsLog()
    config = TrainingConfig(lr=0.01, weight_decay=5e-4, epochs=30, patience=30)
    result = train_node_classifier(model, task, config, seed=0, log=log)
    _, losses = log.series("loss")
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])
    assert result.epochs == 30 and result.test_accuracy > 0.8


# Validation (loss, accuracy) per epoch 1..8, for patience 2.
VAL_CURVE = [(1.0, 0.5), (0.9, 0.4), (0.95, 0.5), (0.85, 0.6), (0.9, 0.55), (0.86, 0.6), (0.9, 0.5), (0.9, 0.5)]


@pytest.mark.parametrize(("watch_accuracy", "best_epoch", "stop_epoch"), [(False, 4, 6), (True, 4, 8)])
def test_early_stopping_rules(watch_accuracy: bool, best_epoch: int, stop_epoch: int) -> None:
    # GCN (loss only): epochs 5 and 6 do not lower 0.85, so it stops at 6. GAT's rule: epoch 3 ties the best
    # accuracy and epoch 6 matches it again, restarting patience, so it stops at 8; the weights kept are
    # epoch 4's, the last to improve loss and accuracy together (epoch 2 lowered only the loss).
    model = GCN(2, 2)
    stopper = EarlyStopping(patience=2, watch_accuracy=watch_accuracy)
    for epoch, (loss, accuracy) in enumerate(VAL_CURVE, 1):
        model.first.bias.data[:] = epoch  # mark the weights with their epoch
        stopper.update(epoch, loss, accuracy, model)
        if stopper.stop:
            break
    assert (epoch, stopper.best_epoch) == (stop_epoch, best_epoch)
    stopper.finish(model)
    assert np.all(model.first.bias.numpy() == best_epoch)


def test_early_stopping_stops_and_restores_the_best_weights() -> None:
    tz.manual_seed(0)
    task = two_communities(1)
    model = GCN(8, 2)
    log = MetricsLog()
    config = TrainingConfig(lr=0.2, weight_decay=0.0, epochs=300, patience=3)  # a large lr overfits fast
    result = train_node_classifier(model, task, config, seed=0, log=log)
    epochs, val_losses = log.series("val_loss")
    assert result.epochs < 300 and result.epochs == result.best_epoch + 3
    assert epochs[int(np.argmin(val_losses))] == result.best_epoch
    assert result.val_accuracy == log.records[result.best_epoch - 1]["val_acc"]  # evaluated with the best weights


# =================================================================================================
# Examples
# =================================================================================================
def read_log(path: Path) -> list[tuple[int, float, float]]:
    return [(r["step"], r["loss"], r["val_loss"]) for r in map(json.loads, path.read_text().splitlines())]


def test_gat_example_runs_and_plots(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    figure = tmp_path / "gat.png"
    assert load_example("gat_cora").main(["--seeds", "1", "--epochs", "2", "--plot", str(figure)]) == 0
    out = capsys.readouterr().out
    assert "seed 0: test accuracy" in out and "GAT: test accuracy" in out and "epoch time" in out
    assert figure.stat().st_size > 10_000


def test_gcn_example_runs_and_plots(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    figure = tmp_path / "gcn.png"
    assert load_example("gcn_cora").main(["--seeds", "1", "--epochs", "5", "--plot", str(figure)]) == 0
    assert "GCN: test accuracy" in capsys.readouterr().out
    assert figure.stat().st_size > 10_000


@pytest.mark.parametrize(("example", "extra"), [("gat_cora", ["--model", "gat"]), ("gcn_cora", [])])
def test_resume_continues_bit_identically(example: str, extra: list[str], tmp_path: Path, capsys) -> None:
    main = load_example(example).main
    common = ["--seeds", "1", "--seed", "3", *extra]
    assert main([*common, "--epochs", "4", "--log", str(tmp_path / "straight.jsonl")]) == 0
    straight_out = capsys.readouterr().out
    checkpoint = str(tmp_path / "run.npz")
    assert main([*common, "--epochs", "2", "--save", checkpoint, "--log", str(tmp_path / "first.jsonl")]) == 0
    assert main([*common, "--epochs", "4", "--resume", checkpoint, "--log", str(tmp_path / "second.jsonl")]) == 0
    resumed_out = capsys.readouterr().out
    straight = read_log(tmp_path / "straight.jsonl")
    assert read_log(tmp_path / "first.jsonl") + read_log(tmp_path / "second.jsonl") == straight
    assert len(straight) == 4
    accuracy = straight_out.split("test accuracy ")[1].split("%")[0]
    assert resumed_out.split("seed 3: test accuracy ")[-1].startswith(accuracy + "%")


def test_save_needs_a_single_seed(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        load_example("gcn_cora").main(["--save", str(tmp_path / "x.npz")])


@pytest.mark.gpu
@pytest.mark.parametrize("model", ["gat", "gatv2"])
def test_gpu_training_matches_the_cpu_closely(model: str, capsys: pytest.CaptureFixture) -> None:
    if not tz.gpu_available():
        pytest.skip("needs a CUDA GPU and CuPy")
    main = load_example("gat_cora").main
    accuracies = []
    for device in ("cpu", "gpu"):
        assert main(["--model", model, "--device", device, "--seeds", "1", "--epochs", "30"]) == 0
        accuracies.append(float(capsys.readouterr().out.split("test accuracy ")[1].split("%")[0]))
    assert abs(accuracies[0] - accuracies[1]) < 5.0  # different random streams: close, not equal
