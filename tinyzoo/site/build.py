"""Write the site: an index, one annotated page per module, the op rules, the results and a reading guide.

Everything is made from the files as they are: the pages from the source, the zoo table from `zoo.CATALOGUE`
and the README's zoo table (result, command, time, figure links), the results page from docs/results.md. On a
model page, the `explain` table and the tape are computed from the model's `demo()` when the site is built;
figures that need training are copied from docs/figures/, never made again.
"""

from __future__ import annotations

import ast
import dataclasses
import html
import importlib
import posixpath
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pygments.formatters import HtmlFormatter

from tinyzoo import zoo
from tinyzoo.site.annotate import (
    MARKDOWN,
    SymbolIndex,
    Target,
    highlight_lines,
    render_markdown,
    split_sections,
)
from tinyzoo.site.rules import op_rules

PACKAGE = Path(__file__).resolve().parent.parent  # tinyzoo/
ROOT = PACKAGE.parent  # the checkout (README.md, docs/), when there is one

# The layers, bottom to top, as the index lists them: (title, the module-name prefixes they hold)
LAYERS = [
    ("backend", ("tinyzoo.backend", "tinyzoo.errors", "tinyzoo.rng")),
    ("autograd: the engine", ("tinyzoo.autograd",)),
    ("kernels", ("tinyzoo.kernels",)),
    ("nn and optim: layers and optimisers", ("tinyzoo.nn", "tinyzoo.optim")),
    ("data and checkpoints", ("tinyzoo.data", "tinyzoo.checkpoint")),
    ("study and training", ("tinyzoo.study", "tinyzoo.train", "tinyzoo.plot", "tinyzoo.testing")),
    ("models", ("tinyzoo.models",)),
    ("the package", ("tinyzoo",)),
]

READING_GUIDE = """\
# How to read this

Every page here is made from tinyzoo's own files when the site is built, so it cannot drift from the code.

**A module page** has the prose on the left and the code it explains on the right. The prose is the
module's, class's or function's docstring and the comments written above a block of code; trailing comments
such as `# [batch, heads, nodes]` stay in the code, where they give the shape of the tensor on that line.
Read a model file top to bottom: its docstring states the idea, the equations and the paper, and a note
marks every place where the code departs from the paper, and why.

**Names link to their definitions.** A tinyzoo class or function in the code (`nn.Linear`, `tz.tensor`,
`EdgeAttention`) links to the page and line where it is defined; the line numbers are links too.

**A model page** starts with what the model does when it runs: the result from the README with the exact
command that produced it, the figures its example draws, the `explain` table (every layer, its output shape,
parameters and FLOPs) for the model's demo input, and its *tape*, the graph of ops that one forward pass
recorded, which `backward()` walks in reverse. The tape is drawn with every sub-module of the model as one box.

**The op rules** page lists every op in the engine with its forward computation and its backward rule side by
side, as the code holds them: an op is a function that computes its value with NumPy (or CuPy) and records a
backward rule written with tinyzoo ops, so that gradients are themselves differentiable.

The layers import only from those below them:
`backend → autograd → kernels → nn/optim → data, checkpoint → study, train → models → examples`.
Start with [tinyzoo.autograd.tensor](tinyzoo/autograd/tensor.py) (the tape) and
[tinyzoo.autograd.ops](tinyzoo/autograd/ops.py), then [tinyzoo.nn.module](tinyzoo/nn/module.py), then any model
of [the zoo](README.md).
"""


@dataclass(frozen=True)
class ZooRow:
    """One row of the README's zoo table: the model's module and its cells (inline Markdown)."""

    module: str
    model: str
    result: str
    command: str
    time: str

    def figures(self) -> list[str]:
        """The figure files (docs/figures/...) the row links to."""
        return re.findall(r"docs/figures/[\w.-]+\.(?:png|svg|jpg)", self.result + self.model)


def page_name(module: str) -> str:
    """The page file of a module: tinyzoo.nn.layers -> tinyzoo.nn.layers.html."""
    return f"{module}.html"


def module_files(package: Path = PACKAGE) -> dict[str, Path]:
    """{dotted name: file} of every module of the package (the site builder, `__main__` and examples left out)."""
    files = {}
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package.parent).with_suffix("").parts
        if parts[1:2] in (("site",), ("examples",)) or parts[-1] == "__main__":
            continue
        files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return files


def layer_of(module: str) -> str:
    """The title of the layer a module belongs to."""
    for title, prefixes in LAYERS:
        if any(module == p or module.startswith(p + ".") for p in prefixes if p != "tinyzoo"):
            return title
    return LAYERS[-1][0]


def summary(source: str) -> str:
    """The first sentence of a module's docstring ('' without one)."""
    paragraph = " ".join((ast.get_docstring(ast.parse(source)) or "").split("\n\n")[0].split())
    sentence = re.match(r"(.+?[.!?])(?:\s|$)", paragraph)
    return sentence.group(1) if sentence else paragraph


def zoo_rows(readme: Path) -> list[ZooRow]:
    """The rows of the README's tables whose model cell links to a model file (tinyzoo/models/<module>.py).

    Cells are found by the table's header (model, result, command, time), so columns may be added or moved.
    """
    if not readme.exists():
        return []
    rows, header, cells = [], [], []
    for token in MARKDOWN.parse(readme.read_text(encoding="utf-8")):
        if token.type == "thead_open":
            header = []
        elif token.type == "tr_open":
            cells = []
        elif token.type == "inline":
            cells.append(token.content)
        elif token.type == "tr_close" and not header:
            header = [cell.strip().lower() for cell in cells]
        elif token.type == "tr_close" and {"model", "result", "command", "time"} <= set(header):
            cell = dict(zip(header, cells))
            match = re.search(r"\(tinyzoo/models/(\w+)\.py\)", cell["model"])
            if match:
                module = f"tinyzoo.models.{match.group(1)}"
                rows.append(ZooRow(module, cell["model"], cell["result"], cell["command"], cell["time"]))
    return rows


class Site:
    """The pages of one build: where they go, what links where."""

    def __init__(self, out: Path, root: Path = ROOT, package: Path = PACKAGE) -> None:
        self.out, self.root = out, root
        self.files = module_files(package)
        self.sources = {name: path.read_text(encoding="utf-8") for name, path in self.files.items()}
        self.symbols = SymbolIndex(self.sources)
        self.rows = zoo_rows(root / "README.md")
        self.notes: list[str] = []  # what the build could not make, shown at the end of the command

    # ---- links -------------------------------------------------------------------------------------------

    def href(self, target: Target) -> str:
        """The URL of a definition."""
        return page_name(target.module) + (f"#L{target.line}" if target.line else "")

    def site_path(self, repo_path: str) -> str | None:
        """The site URL of a file of the checkout (README.md, docs/..., tinyzoo/...py), or None if it has none."""
        path, _, anchor = repo_path.partition("#")
        anchor = f"#{anchor}" if anchor else ""
        if path in ("", "README.md"):
            return ("index.html" if path else "") + anchor
        if path.startswith("docs/figures/"):
            return "figures/" + path.removeprefix("docs/figures/")
        if path == "docs/results.md":
            return "results.html" + anchor
        if path.startswith("tinyzoo/") and path.endswith(".py"):
            module = path.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
            return page_name(module) + anchor if module in self.sources else None
        return None

    def relink(self, rendered: str, base: str) -> str:
        """Rewrite the links of Markdown rendered from a file in folder `base` (relative to the checkout)."""

        def link(match: re.Match) -> str:
            attribute, url = match.group(1), html.unescape(match.group(2))
            if re.match(r"[a-z]+:|#", url):
                return match.group(0)
            target = self.site_path(posixpath.normpath(posixpath.join(base, url)) if url else url)
            if target is None:
                return f'{attribute}="" data-unlinked="{html.escape(url)}"'
            return f'{attribute}="{html.escape(target)}"'

        rendered = re.sub(r'(href|src)="([^"]*)"', link, rendered)
        return re.sub(r'<a href="" data-unlinked="([^"]*)">(.*?)</a>', r'<span title="\1">\2</span>', rendered)

    def link_names(self, rendered: str, module: str) -> str:
        """Link `name` and `module.name` code spans of prose written in `module` to their definitions."""

        def link(match: re.Match) -> str:
            target = self.symbols.resolve_path(module, match.group(1))
            return f'<a href="{self.href(target)}">{match.group(0)}</a>' if target else match.group(0)

        return re.sub(r"<code>([A-Za-z_][\w.]*?)(?:\(\))?</code>", link, rendered)

    def inline(self, markdown: str, base: str = "") -> str:
        """Inline Markdown (a table cell) to HTML, links rewritten."""
        return self.relink(MARKDOWN.renderInline(markdown), base)

    # ---- pages -------------------------------------------------------------------------------------------

    def write(self, name: str, title: str, body: str) -> None:
        """Write one page around `body`."""
        nav = ('<a href="index.html">tinyzoo</a> · <a href="reading.html">how to read this</a> · '
               '<a href="ops.html">op rules</a> · <a href="results.html">results</a>')  # fmt: skip
        (self.out / name).write_text(
            "<!DOCTYPE html>\n"
            f'<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">'
            f'<title>{html.escape(title)}</title><link rel="stylesheet" href="style.css"></head>\n'
            f"<body><nav>{nav}</nav>\n<main>\n{body}\n</main></body></html>\n",
            encoding="utf-8",
        )

    def annotated(self, module: str) -> str:
        """The side-by-side sections of a module's page."""
        source = self.sources[module]
        code = highlight_lines(source, module, self.symbols, self.href)
        parts = []
        for section in split_sections(source):
            lines = list(section.lines)
            while lines and not code[lines[-1] - 1].strip():
                lines.pop()
            rendered = "\n".join(
                f'<span class="line" id="L{n}"><a class="ln" href="#L{n}">{n}</a>{code[n - 1]}</span>' for n in lines
            )
            prose = self.link_names(self.relink(render_markdown("\n".join(section.prose)), ""), module)
            parts.append(f'<div class="section"><div class="prose">{prose}</div>'
                         f'<div class="code"><pre>{rendered}</pre></div></div>')  # fmt: skip
        return "\n".join(parts)

    def module_page(self, module: str) -> None:
        """One module's annotated page (with the model's results, figures, explain table and tape on a model)."""
        path = self.files[module].relative_to(self.files["tinyzoo"].parent.parent).as_posix()
        where = f"{html.escape(path)} · {html.escape(layer_of(module))}"
        head = f'<h1>{html.escape(module)}</h1>\n<p class="where">{where}</p>'
        extras = self.model_extras(module) if module.startswith("tinyzoo.models.") else ""
        self.write(page_name(module), module, f"{head}\n{extras}\n{self.annotated(module)}")

    def model_extras(self, module: str) -> str:
        """Results, figures, explain table and tape of a model of the zoo ('' for helper files)."""
        entries = [e for e in zoo.CATALOGUE if f"tinyzoo.models.{e.module}" == module]
        if not entries:
            return ""
        parts = []
        for row in (r for r in self.rows if r.module == module):
            parts.append(f"<p><b>{self.inline(row.model)}</b>: {self.inline(row.result)}<br>"
                         f"{self.inline(row.command)} · {self.inline(row.time)}</p>")  # fmt: skip
            for figure in row.figures():
                url = self.site_path(figure)
                if url and (self.root / figure).exists():
                    parts.append(f'<figure><img src="{url}" alt="{html.escape(Path(figure).stem)}">'
                                 f"<figcaption>{html.escape(figure)}</figcaption></figure>")  # fmt: skip
        for entry in entries:
            parts.append(f"<p>Example: <code>python -m tinyzoo run {entry.name}</code> "
                         f"(examples/{entry.example}.py) · data: {html.escape(entry.data)} · "
                         f"paper: {html.escape(entry.paper)}</p>")  # fmt: skip
        parts.append(self.demo_views(module))
        return '<div class="glance">\n' + "\n".join(parts) + "\n</div>"

    def demo_views(self, module: str) -> str:
        """The explain table and the tape of one forward and backward pass on the model's demo input."""
        from tinyzoo.errors import GraphError
        from tinyzoo.study import draw_graph, explain, record_modules

        loaded = importlib.import_module(module)
        if not hasattr(loaded, "demo"):
            self.notes.append(f"{module} has no demo(): no explain table or tape")
            return (f"<p class=\"note\">{html.escape(module)} has no <code>demo()</code> yet, so this page has no "
                    "explain table or tape.</p>")  # fmt: skip
        model, sample = loaded.demo()
        table = explain(model, sample)
        args = sample if isinstance(sample, tuple) else (sample,)
        with record_modules(model):
            outputs = list(_grad_tensors(model(*args)))
        name = module.rpartition(".")[2]
        explained = (
            f"<h2>explain</h2>\n<p><code>python -m tinyzoo explain {name}</code> on <code>demo()</code>'s input:</p>"
            f"\n<pre class=\"explain\">{html.escape(table)}</pre>\n"
        )
        if not outputs:
            self.notes.append(f"{module}: the demo's forward records no tape")
            return explained + ('<p class="note">Its forward pass on the demo input puts nothing on the tape (no '
                                "output needs a gradient), so there is no tape to draw.</p>")  # fmt: skip
        loss = sum((t.mean() for t in outputs[1:]), outputs[0].mean())
        tape = self.out / "tapes" / f"{module}.svg"
        try:
            draw_graph(loss, tape, model=model, collapse_modules=_boxes(model), use_dot=False)
        except GraphError:  # a forward that calls its sub-modules' methods, not the modules (the DBN): op by op
            draw_graph(loss, tape, model=model, use_dot=False)
        loss.backward()
        with_grad = sum(p.grad is not None for p in model.parameters())
        return explained + (
            f"<h2>the tape</h2>\n<p>One forward pass on the same input, reduced to a scalar (the mean of every output "
            f"that needs a gradient), drawn with one box per sub-module (per block, for a list of blocks); "
            f"<code>backward()</code> then walked it and reached {with_grad} of the model's "
            f"{len(list(model.parameters()))} parameters.</p>\n"
            f'<div class="tape"><a href="tapes/{tape.name}"><img src="tapes/{tape.name}" '
            f'alt="the tape of {html.escape(name)}"></a></div>\n<p>(Scroll, or open the drawing on its own.)</p>'
        )

    def ops_page(self) -> None:
        """Every op's forward and backward rule side by side, module by module."""
        parts = ["<h1>op rules</h1>",
                 "<p>Every call of <code>record_op(name, value, inputs, backward)</code> in the package, read "
                 "from the source: the forward computation (the op's statements before the call) beside its "
                 "backward rule, a function of (grad, out) written with tinyzoo ops.</p>"]  # fmt: skip
        formatter = HtmlFormatter(nowrap=True)
        from pygments import highlight
        from pygments.lexers import PythonLexer

        for module, source in self.sources.items():
            rules = op_rules(source)
            if not rules:
                continue
            parts.append(f'<h2><a href="{page_name(module)}">{html.escape(module)}</a> ({len(rules)} ops)</h2>')
            parts.append('<table class="rules"><tr><th>op</th><th>forward</th><th>backward</th></tr>')
            for rule in rules:
                forward = highlight(rule.forward, PythonLexer(), formatter) if rule.forward else ""
                backward = highlight(rule.backward, PythonLexer(), formatter)
                parts.append(
                    f'<tr><td><a href="{page_name(module)}#L{rule.line}">{html.escape(rule.name)}</a></td>'
                    f'<td><pre class="code">{forward}</pre></td><td><pre class="code">{backward}</pre></td></tr>'
                )
            parts.append("</table>")
        self.write("ops.html", "op rules", "\n".join(parts))

    def markdown_page(self, name: str, title: str, markdown: str, base: str) -> None:
        """A page rendered from Markdown whose links are relative to folder `base` of the checkout."""
        self.write(name, title, self.relink(render_markdown(markdown), base))

    def index_page(self) -> None:
        """The zoo table, the layers and their modules, and links to the other pages."""
        rows = ["<tr><th>model</th><th>paper</th><th>data</th><th>result</th><th>command</th><th>time</th></tr>"]
        for entry in zoo.CATALOGUE:
            module = f"tinyzoo.models.{entry.module}"
            found = [r for r in self.rows if r.module == module] or [None]
            for row in found:
                result, command, time = (self.inline(row.result), self.inline(row.command), self.inline(row.time)) \
                    if row else ("—", f"<code>python -m tinyzoo run {entry.name}</code>", "")  # fmt: skip
                rows.append(
                    f'<tr><td><a href="{page_name(module)}">{html.escape(entry.name)}</a></td>'
                    f"<td>{html.escape(entry.paper)}</td><td>{html.escape(entry.data)}</td>"
                    f"<td>{result}</td><td>{command}</td><td>{time}</td></tr>"
                )
        layers = []
        for title, _ in LAYERS:
            items = [f'<li><a href="{page_name(m)}">{html.escape(m)}</a> {self.inline(summary(s))}</li>'
                     for m, s in self.sources.items() if layer_of(m) == title]  # fmt: skip
            if items:
                layers.append(f"<h3>{html.escape(title)}</h3>\n<ul>\n" + "\n".join(items) + "\n</ul>")
        body = (
            "<h1>tinyzoo</h1>\n<p>A small, readable deep-learning engine (a tape-based autograd over NumPy or CuPy) "
            "and a zoo of models built on it, as annotated source: prose on the left, code on the right. "
            'New here? Read <a href="reading.html">how to read this</a>, then the '
            '<a href="ops.html">op rules</a> of the engine.</p>\n'
            '<h2>the zoo</h2>\n<table class="zoo">\n' + "\n".join(rows) + "\n</table>\n"
            "<p>† ran with <code>OPENBLAS_NUM_THREADS=1</code>; times are from a 2-core CPU sandbox.</p>\n"
            '<p>The full results, with run histories and benchmarks: <a href="results.html">results</a>.</p>\n'
            "<h2>the layers</h2>\n" + "\n".join(layers)
        )
        self.write("index.html", "tinyzoo", body)

    def build(self) -> None:
        """Write every page, the style sheet, the figures and the tapes."""
        (self.out / "tapes").mkdir(parents=True, exist_ok=True)
        style = (Path(__file__).parent / "style.css").read_text(encoding="utf-8")
        (self.out / "style.css").write_text(style + HtmlFormatter().get_style_defs(".code"), encoding="utf-8")
        figures = self.root / "docs" / "figures"
        if figures.is_dir():
            shutil.copytree(figures, self.out / "figures", dirs_exist_ok=True)
        else:
            self.notes.append(f"no {figures}: figures are left out (they come with a checkout, not the wheel)")
        for module in self.sources:
            self.module_page(module)
        self.ops_page()
        self.markdown_page("reading.html", "how to read this", READING_GUIDE, "")
        results = self.root / "docs" / "results.md"
        if results.exists():
            self.markdown_page("results.html", "results", results.read_text(encoding="utf-8"), "docs")
        else:
            self.notes.append(f"no {results}: the results page only says so")
            self.write("results.html", "results", "<p>The results are in docs/results.md of a checkout.</p>")
        self.index_page()


def _boxes(model: Any) -> list[Any]:
    """The modules drawn as one box each on a tape: the model's children, a ModuleList's or ModuleDict's items
    in place of the container (it is never called itself, so its ops would be drawn one by one)."""
    from tinyzoo.nn.module import ModuleDict, ModuleList

    boxes = []
    for child in model.children():
        boxes += list(child.children()) if isinstance(child, ModuleList | ModuleDict) else [child]
    return boxes


def _grad_tensors(value: Any) -> Iterator[Any]:
    """Every tensor that needs a gradient inside a model's output (tensors, tuples, lists, dicts, dataclasses)."""
    from tinyzoo.autograd.tensor import Tensor

    if isinstance(value, Tensor):
        if value.requires_grad:
            yield value
    elif isinstance(value, tuple | list):
        for item in value:
            yield from _grad_tensors(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _grad_tensors(item)
    elif dataclasses.is_dataclass(value):
        for item in dataclasses.fields(value):
            yield from _grad_tensors(getattr(value, item.name))


def build_site(out: str | Path, root: Path = ROOT, log: Callable[[str], Any] = print) -> Path:
    """Build the site into `out` and return the path of its index page."""
    site = Site(Path(out), root)
    site.build()
    for note in site.notes:
        log(f"note: {note}")
    return site.out / "index.html"


def serve(folder: str | Path, port: int = 8000) -> None:
    """Serve `folder` on http://localhost:`port` until interrupted."""
    import functools
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(folder))
    with ThreadingHTTPServer(("127.0.0.1", port), handler) as server:
        print(f"serving {folder} on http://localhost:{port}/ (Ctrl-C stops)")
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
