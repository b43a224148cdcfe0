"""Split a source file into pycco-style sections and highlight its code, linking tinyzoo names to their definitions.

A section is one block of prose (the docstring or the run of full-line comments that opens it) and the code
that follows, up to the next block of prose. Docstrings of modules, classes and functions become prose, so a
`def` line moves down beside the docstring that explains it; trailing comments (`x = ...  # [batch, T]`) stay in
the code. Prose is Markdown, rendered by markdown-it-py; code is tokenised once for the whole file by pygments
(so multi-line strings colour correctly) and then cut into lines.

Links: `SymbolIndex` reads every module with `ast` and notes where each top-level class and function is
defined and what each module imports from tinyzoo; a name in the code (`GAT`, `nn.Linear`, `tz.tensor`) links
to the page and line of its definition, following re-exports such as `tinyzoo.nn.__init__`.
"""

from __future__ import annotations

import ast
import html
import inspect
import io
import tokenize
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from markdown_it import MarkdownIt
from pygments.lexers import PythonLexer
from pygments.token import STANDARD_TYPES, Name, Token

MARKDOWN = MarkdownIt("commonmark", {"html": False}).enable("table")  # raw HTML in a docstring is shown, not run


@dataclass
class Section:
    """One block of prose (Markdown source) and the code lines it explains (1-based line numbers)."""

    prose: list[str] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)


def _docstrings(tree: ast.Module) -> dict[int, tuple[int, int, str]]:
    """{first line of a docstring: (its last line, the first line of its header, its cleaned text)}."""
    found = {}
    for node in ast.walk(tree):
        if not isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        body = node.body
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
            if isinstance(body[0].value.value, str):
                doc = body[0]
                header = doc.lineno if isinstance(node, ast.Module) else node.lineno
                if not isinstance(node, ast.Module) and node.decorator_list:
                    header = node.decorator_list[0].lineno
                found[doc.lineno] = (doc.end_lineno, header, inspect.cleandoc(doc.value.value))
    return found


def _comment_lines(source: str) -> dict[int, str]:
    """{line: comment text} for lines holding nothing but a comment (shebang and `# fmt:`/`noqa` pragmas kept)."""
    comments = {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type != tokenize.COMMENT or tok.line[: tok.start[1]].strip():
            continue
        text = tok.string[1:]
        if tok.string.startswith("#!") or text.strip().startswith(("fmt:", "noqa", "type:")):
            continue
        comments[tok.start[0]] = text[1:] if text.startswith(" ") else text
    return comments


def split_sections(source: str) -> list[Section]:
    """The file as sections of prose and code, in order; every line of code appears once, in its section."""
    tree = ast.parse(source)
    docstrings = _docstrings(tree)
    comments = _comment_lines(source)
    text = source.splitlines()
    sections = [Section()]
    line = 1
    while line <= len(text):
        current = sections[-1]
        if line in docstrings:
            last, header, doc = docstrings[line]
            moved = [n for n in current.lines if n >= header]  # the def/class lines move beside their docstring
            current.lines = [n for n in current.lines if n < header]
            if any(text[n - 1].strip() for n in current.lines):
                current = Section()
                sections.append(current)
            elif current.prose:
                current.prose.append("")
            current.prose.append(doc)
            current.lines.extend(moved)
            line = last + 1
            continue
        if line in comments:
            if any(text[n - 1].strip() for n in current.lines):
                current = Section()
                sections.append(current)
            current.prose.append(comments[line])
        elif current.lines or text[line - 1].strip():
            current.lines.append(line)
        line += 1
    return [s for s in sections if s.prose or s.lines]


def render_markdown(text: str) -> str:
    """Markdown source to HTML."""
    return MARKDOWN.render(text)


@dataclass(frozen=True)
class Target:
    """Where a name is defined: the page's module and the line."""

    module: str
    line: int | None = None  # None: the name is a module, link to the top of its page


class SymbolIndex:
    """Top-level definitions and tinyzoo imports of every module, to resolve names to their definitions."""

    def __init__(self, modules: dict[str, str]) -> None:
        self.modules = modules  # {dotted module name: source}
        self.defined: dict[str, dict[str, int]] = {}
        self.imported: dict[str, dict[str, tuple[str, str | None]]] = {}  # local name -> (module, name or None)
        for name, source in modules.items():
            self._read(name, ast.parse(source))

    def _read(self, module: str, tree: ast.Module) -> None:
        """Note `module`'s top-level classes and functions and the names it imports from tinyzoo."""
        defined, imported = {}, {}
        for node in tree.body:
            if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                defined[node.name] = node.lineno
            elif isinstance(node, ast.Import):
                for alias in node.names:  # `import tinyzoo as tz`, `import tinyzoo.nn as nn`, `import tinyzoo.nn`
                    if alias.name.split(".")[0] == "tinyzoo":
                        local = alias.asname or "tinyzoo"
                        imported[local] = (alias.name if alias.asname else "tinyzoo", None)
            elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("tinyzoo"):
                for alias in node.names:
                    submodule = f"{node.module}.{alias.name}"
                    source = (submodule, None) if submodule in self.modules else (node.module, alias.name)
                    imported[alias.asname or alias.name] = source
        self.defined[module], self.imported[module] = defined, imported

    def resolve(self, module: str, name: str, depth: int = 0) -> Target | None:
        """The definition that `name` means inside `module`, following imports and re-exports; None if not tinyzoo."""
        if depth > 10 or module not in self.modules:
            return None
        if name in self.defined[module]:
            return Target(module, self.defined[module][name])
        if name in self.imported[module]:
            source_module, source_name = self.imported[module][name]
            if source_name is None:
                return Target(source_module) if source_module in self.modules else None
            return self.resolve(source_module, source_name, depth + 1)
        if f"{module}.{name}" in self.modules:  # a submodule reached as an attribute: tinyzoo.nn
            return Target(f"{module}.{name}")
        return None

    def resolve_path(self, module: str, dotted: str) -> Target | None:
        """What a dotted name written in `module`'s prose means (`EdgeAttention`, `nn.Linear`,
        `tinyzoo.models.gatv2`); None unless each part before the last is a tinyzoo module."""
        if dotted in self.modules:
            return Target(dotted)
        first, *rest = dotted.split(".")
        target = Target("tinyzoo") if first == "tinyzoo" else self.resolve(module, first)
        for name in rest:
            if target is None or target.line is not None:
                return None
            target = self.resolve(target.module, name)
        return target

    def module_alias(self, module: str, name: str) -> str | None:
        """The module that the local `name` stands for in `module` (`tz` -> tinyzoo), or None."""
        target = self.resolve(module, name)
        return target.module if target and target.line is None else None


def _css_class(ttype: Any) -> str:
    """pygments' short CSS class for a token type (its nearest ancestor with one)."""
    while ttype not in STANDARD_TYPES:
        ttype = ttype.parent
    return STANDARD_TYPES[ttype]


def highlight_lines(source: str, module: str, symbols: SymbolIndex, href: Callable[[Target], str]) -> list[str]:
    """The file's lines as highlighted HTML; tinyzoo names link to `href(target)`."""
    lines, current = [], []
    previous: list[str] = []  # the last two significant token values, to see `alias.name`
    defining = False
    for ttype, value in PythonLexer(stripnl=False).get_tokens(source):
        text = html.escape(value)
        if ttype in Name and ttype not in (Name.Builtin, Name.Builtin.Pseudo, Name.Decorator):
            if defining:  # the name after `def`/`class` is the definition itself
                target = None
            elif ttype in Name.Namespace:  # `from tinyzoo.nn.layers import ...`
                target = Target(value) if value in symbols.modules else None
            elif len(previous) == 2 and previous[1] == "." and symbols.module_alias(module, previous[0]):
                target = symbols.resolve(symbols.module_alias(module, previous[0]), value)
            elif previous[-1:] == ["."]:
                target = None  # an attribute of something that is not a tinyzoo module
            else:
                target = symbols.resolve(module, value)
            if target is not None:
                text = f'<a href="{href(target)}">{text}</a>'
        if value.strip():
            defining = ttype in Token.Keyword and value in ("def", "class")
            previous = (previous + [value])[-2:]
        css = _css_class(ttype)
        pieces = text.split("\n")
        for i, piece in enumerate(pieces):
            if piece:
                current.append(f'<span class="{css}">{piece}</span>' if css else piece)
            if i < len(pieces) - 1:
                lines.append("".join(current))
                current = []
    if current:
        lines.append("".join(current))
    n_lines = len(source.splitlines())
    return (lines + [""] * n_lines)[:n_lines]
