"""Sketch-RNN on KanjiVG strokes: a VAE that reads and writes drawings pen stroke by pen stroke.

    python examples/sketch_rnn.py --device cpu [--steps 1000] [--plot docs/figures/sketch_rnn_samples.png]
    python examples/sketch_rnn.py --data quickdraw --data-path cat.npz     # a sketch-rnn QuickDraw file
    python examples/sketch_rnn.py --paper --steps 100000                   # the paper's sizes (GPU-sized)

The CPU default (see tinyzoo/models/sketch_rnn.py for the model): encoder 2×64, decoder 128, z 32,
M = 10 mixtures, batch 64, drawings of at most 100 points (KanjiVG with 3 samples per Bézier, long
characters subsampled by the loader), offsets divided by the data set's stroke scale, 1000 Adam
steps at 1e-3 with gradient clipping 1.0, w_KL 0.5, KL floor 0.2, and KL annealing
η_step = 1 - 0.99·R^step with R = 0.999 — faster than the paper's R = 0.99995 (which `--paper` sets)
so that the weight reaches ~0.6 within the short run.

Prints a progress bar with the reconstruction loss L_R, the KL loss and the total; at the end, L_R and
L_KL on held-out drawings. `--plot PATH` draws the loss curves, held-out drawings with their
reconstructions (decoded from the posterior mean μ) and unconditional samples (z ~ N(0, I)) at two
temperatures.
"""

from __future__ import annotations

import sys
import time

import numpy as np

import tinyzoo as tz
from tinyzoo import optim
from tinyzoo.data import load_kanjivg, load_quickdraw, stroke_scale, to_stroke5
from tinyzoo.errors import DataError
from tinyzoo.models.sketch_rnn import PAPER, SketchRNN, chamfer_distance, normalised_points, sketch_loss
from tinyzoo.train import MetricsLog, ProgressBar, check_device, example_parser, load_training, run_main, save_training

CPU_SIZES = {"enc_hidden": 64, "dec_hidden": 128, "z_dim": 32, "n_mixtures": 10}


def parse_args(argv: list[str] | None):
    """The example's flags (the shared ones plus Sketch-RNN's)."""
    parser = example_parser(__doc__.splitlines()[0], steps=1000)
    parser.add_argument("--data", choices=["kanjivg", "quickdraw"], default="kanjivg")
    parser.add_argument("--data-path", default=None, help="the sketch-rnn .npz file for --data quickdraw")
    parser.add_argument("--max-len", type=int, default=100, help="N_max, the most points per drawing")
    parser.add_argument("--samples-per-curve", type=int, default=3, help="KanjiVG: points per Bézier segment")
    parser.add_argument(
        "--paper",
        action="store_true",
        help="the paper's sizes (encoder 256, decoder 512, z 128, M 20), batch 100, R 0.99995",
    )
    for name, value in CPU_SIZES.items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=int, default=value)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--grad-clip", type=float, default=1.0)
    parser.add_argument("--w-kl", type=float, default=0.5, help="w_KL, the KL term's weight")
    parser.add_argument("--kl-min", type=float, default=0.2, help="KL_min, the floor of the KL loss")
    parser.add_argument("--eta-min", type=float, default=0.01, help="η_min, the annealed KL weight at step 0")
    parser.add_argument("--kl-decay", type=float, default=0.999, help="R in η_step = 1 - (1 - η_min) R^step")
    parser.add_argument("--valid-size", type=int, default=256, help="held-out drawings (KanjiVG)")
    args = parser.parse_args(argv)
    if args.paper:
        vars(args).update(PAPER, batch_size=100, kl_decay=0.99995)
    return args


def load_drawings(args) -> tuple[np.ndarray, np.ndarray, str]:
    """(train, valid) stroke-5 arrays [n, N_max + 1, 5], offsets divided by the training set's stroke scale."""
    if args.data == "kanjivg":
        kanji = load_kanjivg(max_len=args.max_len, samples_per_curve=args.samples_per_curve)
        order = np.random.default_rng(0).permutation(len(kanji.sequences))  # fixed split whatever --seed
        valid = [kanji.sequences[i] for i in order[: args.valid_size]]
        train = [kanji.sequences[i] for i in order[args.valid_size :]]
        description = kanji.description
    else:
        if args.data_path is None:
            raise DataError("--data quickdraw needs --data-path FILE (a sketch-rnn .npz such as cat.npz)")
        sketches = load_quickdraw(args.data_path)
        train = [s for s in sketches.train if len(s) <= args.max_len]  # the paper drops longer sketches
        valid = [s for s in sketches.valid if len(s) <= args.max_len]
        description = sketches.description
    if not train or not valid:
        raise DataError(f"no training or held-out drawing has at most {args.max_len} points")
    scale = stroke_scale(train)

    def stroke5(sequences: list[np.ndarray]) -> np.ndarray:
        return np.stack([to_stroke5(s * np.array([1 / scale, 1 / scale, 1], np.float32), args.max_len)
                         for s in sequences])  # fmt: skip

    return stroke5(train), stroke5(valid), f"{description}; {len(train)} train / {len(valid)} held out"


def train_step(model: SketchRNN, optimizer: optim.Adam, x: tz.Tensor, step: int, args) -> dict[str, float]:
    """One Adam step on a batch x [B, N_max + 1, 5]; returns the loss terms."""
    total, recon, kl = sketch_loss(model(x), x[:, 1:], step, args.w_kl, args.kl_min, args.eta_min, args.kl_decay)
    optimizer.zero_grad()
    total.backward()
    optim.clip_grad_norm_(model.parameters(), args.grad_clip)
    optimizer.step()
    return {"L_R": recon.item(), "L_KL": kl.item(), "loss": total.item()}


def evaluate(model: SketchRNN, valid: np.ndarray, device: str, batch_size: int = 128) -> tuple[float, float]:
    """L_R and L_KL on the held-out drawings (z drawn from the posterior, as in training)."""
    sums, count = np.zeros(2), 0
    with tz.no_grad():
        for start in range(0, len(valid), batch_size):
            x = tz.tensor(valid[start : start + batch_size], device=device)
            _, recon, kl = sketch_loss(model(x), x[:, 1:], step=0)
            sums += len(x) * np.array([recon.item(), kl.item()])
            count += len(x)
    return sums[0] / count, sums[1] / count


def reconstruction_score(model: SketchRNN, valid: np.ndarray, args, device: str, temperature: float = 0.2,
                         batch_size: int = 128) -> dict[str, float]:  # fmt: skip
    """Decode each held-out drawing from its posterior mean μ at temperature τ and compare the result with its
    own input and with a random other held-out drawing (symmetric Chamfer distance of scale-normalised points).
    Returns the fraction of drawings whose reconstruction is closer to its own input, and median distances."""
    rng = np.random.default_rng(args.seed + 1)
    others = (np.arange(len(valid)) + rng.integers(1, len(valid), len(valid))) % len(valid)  # never itself
    inputs = [normalised_points(seq[1:]) for seq in valid]
    own, other = [], []
    for start in range(0, len(valid), batch_size):
        with tz.no_grad():
            mu, _ = model.encode(tz.tensor(valid[start : start + batch_size], device=device))
        for i, seq in enumerate(model.sample(mu, args.max_len, temperature, rng), start=start):
            points = normalised_points(seq)
            own.append(chamfer_distance(points, inputs[i]))
            other.append(chamfer_distance(points, inputs[others[i]]))
    own, other = np.array(own), np.array(other)
    return {"closer_to_own": float((own < other).mean()), "own": float(np.median(own)),
            "other": float(np.median(other))}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """Train Sketch-RNN and report the reconstruction and KL losses."""
    args = parse_args(argv)
    device = check_device(args.device)
    tz.manual_seed(args.seed)
    data_rng = np.random.default_rng(args.seed)
    train, valid, description = load_drawings(args)
    print(description)
    model = SketchRNN(args.enc_hidden, args.dec_hidden, args.z_dim, args.n_mixtures).to(device)
    optimizer = optim.Adam(model.parameters(), lr=args.lr)
    print(f"Sketch-RNN: encoder 2×{args.enc_hidden}, decoder {args.dec_hidden}, z {args.z_dim}, "
          f"M {args.n_mixtures}, N_max {args.max_len}; {model.num_parameters():,} parameters")  # fmt: skip
    start_step = 0
    if args.resume:
        start_step = load_training(args.resume, model, optimizer)
        data_rng = np.random.default_rng([args.seed, start_step])
    log = MetricsLog(args.log)
    start, metrics = time.perf_counter(), {}

    with ProgressBar(args.steps - start_step, "sketch-rnn") as bar:
        for step in range(start_step + 1, args.steps + 1):
            x = tz.tensor(train[data_rng.integers(0, len(train), args.batch_size)], device=device)
            if args.trace and step == start_step + 1:
                from tinyzoo.study.trace import trace

                with trace() as tr:
                    metrics = train_step(model, optimizer, x, step, args)
                print(tr.table())
            else:
                metrics = train_step(model, optimizer, x, step, args)
            if step % 10 == 0 or step == args.steps:
                log.log(step, **metrics)
            bar.update(**metrics)

    if args.save:
        save_training(args.save, model, optimizer, step=args.steps)
    valid_recon, valid_kl = evaluate(model, valid, device)
    if metrics:
        print(f"final train L_R {metrics['L_R']:.3f}, L_KL {metrics['L_KL']:.3f} "
              f"({time.perf_counter() - start:.0f} s for {args.steps - start_step} steps)")  # fmt: skip
    print(f"held-out L_R {valid_recon:.3f}, L_KL {valid_kl:.3f} on {len(valid)} drawings")
    score = reconstruction_score(model, valid, args, device)
    print(
        f"reconstructions (τ=0.2) closer to their own input than to a random other held-out drawing: "
        f"{score['closer_to_own']:.1%} (median Chamfer distance {score['own']:.3f} vs {score['other']:.3f})"
    )
    if args.plot:
        plot_samples(model, log, valid, args, device)
    return 0


# =================================================================================================
# The figure
# =================================================================================================
def draw_strokes(ax, seq: np.ndarray) -> None:
    """Draw stroke-5 rows (no start token) on ax: the pen moves by (Δx, Δy); p2 lifts it after a point."""
    ends = np.flatnonzero(seq[:, 4] == 1)
    seq = seq[: ends[0]] if len(ends) else seq
    points = np.cumsum(seq[:, :2], axis=0) * np.array([1, -1])  # SVG's y points down
    for stroke in np.split(points, np.flatnonzero(seq[:, 3] == 1) + 1):  # one polyline per pen-down run
        ax.plot(stroke[:, 0], stroke[:, 1], color="black", linewidth=1.2)
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_xticks([])
    ax.set_yticks([])


def plot_samples(model: SketchRNN, log: MetricsLog, valid: np.ndarray, args, device: str,
                 columns: int = 8, temperatures: tuple[float, ...] = (0.2, 0.6)) -> None:  # fmt: skip
    """Loss curves, held-out inputs with their reconstructions, and prior samples at two temperatures."""
    from tinyzoo.plot import pyplot, save

    plt = pyplot()
    rng = np.random.default_rng(args.seed)
    inputs = valid[:columns]
    with tz.no_grad():
        mu, _ = model.encode(tz.tensor(inputs, device=device))
    prior = tz.randn(columns, args.z_dim, device=device)
    rows = [("held-out input", list(inputs[:, 1:]))]
    rows += [(f"reconstruction τ={t}", model.sample(mu, args.max_len, t, rng)) for t in temperatures]
    rows += [(f"prior sample τ={t}", model.sample(prior, args.max_len, t, rng)) for t in temperatures]
    weights = tz.tensor(np.linspace(0, 1, columns, dtype=np.float32)[:, None], device=device)  # [columns, 1]
    path = mu[:1] * (1 - weights) + mu[1:2] * weights  # z from input 1 to input 2, linearly [columns, z_dim]
    rows += [("interpolation 1 → 2, τ=0.2", model.sample(path, args.max_len, 0.2, rng))]

    fig = plt.figure(figsize=(1.5 * columns, 1.6 * len(rows) + 2.6))
    grid = fig.add_gridspec(len(rows) + 1, columns, height_ratios=[1.6] + [1] * len(rows))
    curves = fig.add_subplot(grid[0, :])
    for name in ("L_R", "L_KL"):
        curves.plot(*log.series(name), label=name)
    curves.set(xlabel="training step", ylabel="loss", title="Sketch-RNN on KanjiVG" if args.data == "kanjivg"
               else "Sketch-RNN on QuickDraw")  # fmt: skip
    curves.grid(alpha=0.3)
    curves.legend()
    for r, (label, drawings) in enumerate(rows, start=1):
        for c, seq in enumerate(drawings):
            ax = fig.add_subplot(grid[r, c])
            draw_strokes(ax, seq)
            if c == 0:
                ax.set_ylabel(label, fontsize=9)
    print(f"figure written to {save(fig, args.plot)}")


if __name__ == "__main__":
    sys.exit(run_main(main))
