"""The command line: `python -m tinyzoo list | run | data | info | explain | docs`."""

from __future__ import annotations

import argparse
import platform
import runpy
import sys

from tinyzoo import zoo

DATA_SETS = {
    "mnist": "load_mnist",
    "digits": "load_digits",
    "cora": "load_cora",
    "shakespeare": "load_tiny_shakespeare",
    "kanjivg": "load_kanjivg",
}


def cmd_list(_: argparse.Namespace) -> int:
    """Every model with its example and data set."""
    print(f"{'model':<13} {'example':<32} {'data':<36} paper")
    for e in zoo.CATALOGUE:
        example = f"examples/{e.example}.py" if e.available() else "(not in this install)"
        print(f"{e.name:<13} {example:<32} {e.data:<36} {e.paper}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """Run an example script by name (or by model name) with the remaining arguments."""
    name = args.example
    known = {e.name: e.example for e in zoo.CATALOGUE}
    script = zoo.EXAMPLES / f"{known.get(name, name)}.py"
    if not script.exists():
        print(f"error: no example {name!r} in {zoo.EXAMPLES} (see `python -m tinyzoo list`)", file=sys.stderr)
        return 2
    sys.argv = [str(script), *args.args]
    try:
        runpy.run_path(str(script), run_name="__main__")
    except SystemExit as exit_:
        return int(exit_.code or 0)
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    """Which data sets are cached; with --fetch NAME, fetch and convert one."""
    from tinyzoo import data
    from tinyzoo.data import sources

    if args.fetch:
        loaded = getattr(data, DATA_SETS[args.fetch])()
        print(loaded.description)
        return 0
    print(f"cache folder: {sources.data_dir()}  (set $TINYZOO_DATA to move it)")
    cached = sorted(p.name for p in sources.data_dir().glob("*") if p.is_file()) if sources.data_dir().exists() else []
    print("cached files:", ", ".join(cached) or "none")
    print("shipped with the package: cora, digits;  fetch the others with --fetch " + "|".join(DATA_SETS))
    return 0


def cmd_info(_: argparse.Namespace) -> int:
    """Versions, numba on/off, GPU availability."""
    import numpy as np

    import tinyzoo
    from tinyzoo import backend

    try:
        import numba

        numba_line = f"numba {numba.__version__} (Numba kernels on)"
    except ImportError:
        numba_line = "numba not installed (kernels use their NumPy references)"
    gpu = "yes" if backend.gpu_available() else "no (install tinyzoo[gpu] on a machine with an NVIDIA GPU)"
    print(f"tinyzoo {tinyzoo.__version__}  python {platform.python_version()}  numpy {np.__version__}")
    print(numba_line)
    print(f"GPU available: {gpu}")
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    """A model's tree, shapes, parameter counts and FLOPs for a sample input."""
    from tinyzoo.study import explain

    try:
        module = zoo.find(args.model).load()
    except (KeyError, ModuleNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not hasattr(module, "demo"):
        print(f"error: tinyzoo.models.{args.model} has no demo() giving a model and a sample input", file=sys.stderr)
        return 2
    model, sample = module.demo()
    print(explain(model, sample))
    return 0


def cmd_docs(args: argparse.Namespace) -> int:
    """Build the annotated site (and serve it with --serve)."""
    try:
        from tinyzoo.site import build_site, serve
    except ImportError as exc:
        print(f"error: the site needs the docs extra: pip install 'tinyzoo[docs]' ({exc})", file=sys.stderr)
        return 2
    index = build_site(args.out)
    print(f"wrote {index} (open it in a browser; it works from file://)")
    if args.serve:
        serve(args.out, args.port)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run one sub-command."""
    parser = argparse.ArgumentParser(prog="python -m tinyzoo", description="the tinyzoo command line")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="every model with its example and data set").set_defaults(fn=cmd_list)
    run = commands.add_parser("run", help="run an example: python -m tinyzoo run ponder_net --steps 100")
    run.add_argument("example")
    run.add_argument("args", nargs=argparse.REMAINDER)
    run.set_defaults(fn=cmd_run)
    data = commands.add_parser("data", help="which data sets are cached, and fetch them")
    data.add_argument("--fetch", choices=sorted(DATA_SETS))
    data.set_defaults(fn=cmd_data)
    commands.add_parser("info", help="versions, numba, GPU").set_defaults(fn=cmd_info)
    explain = commands.add_parser("explain", help="tree, shapes, parameters and FLOPs of a model")
    explain.add_argument("model")
    explain.set_defaults(fn=cmd_explain)
    docs = commands.add_parser("docs", help="build the annotated site: every model's source, figures and tape")
    docs.add_argument("--out", default="build/site", help="folder to write the site to (default build/site)")
    docs.add_argument("--serve", action="store_true", help="then serve it on http://localhost:PORT")
    docs.add_argument("--port", type=int, default=8000)
    docs.set_defaults(fn=cmd_docs)
    args = parser.parse_args(argv)
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
