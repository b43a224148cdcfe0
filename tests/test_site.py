"""`python -m tinyzoo docs`: the site builds from the checkout, every module has a page, every link and image
resolves, names link to their definitions, the pages are valid HTML, and a real browser shows them cleanly.

The browser test drives headless Chromium through selenium and Debian's chromedriver (`apt-get install chromium
chromium-driver`; `.ci/run` installs them); without them it is skipped, and the reason is in the summary. Set
TINYZOO_SCREENSHOTS=DIR to keep its screenshots (docs/figures/site_index.png and site_gat.png come from there).
"""

from __future__ import annotations

import ast
import importlib
import os
import re
import shutil
import tempfile
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

pytest.importorskip("markdown_it", reason="the site needs the docs extra: pip install -e '.[docs]'")
pytest.importorskip("pygments", reason="the site needs the docs extra: pip install -e '.[docs]'")
pytest.importorskip("matplotlib", reason="the tapes need matplotlib")

from tinyzoo import zoo
from tinyzoo.__main__ import main
from tinyzoo.site.annotate import split_sections
from tinyzoo.site.build import ROOT, module_files, page_name, zoo_rows
from tinyzoo.site.rules import op_rules

BROWSER, DRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
BLOCK = {"div", "p", "pre", "table", "ul", "ol", "figure", "h1", "h2", "h3", "h4", "section", "blockquote"}


class Page(HTMLParser):
    """The links, images and ids of one page, the code links (`<a>` inside `<pre>`) with their text, and the
    nesting errors a parser forgives: a tag closed out of order or never, an id used twice, a block in an inline."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.errors: list[str] = []
        self._open: list[str] = []
        self.links: list[str] = []
        self.images: list[str] = []
        self.ids: set[str] = set()
        self.code_links: list[tuple[str, str]] = []
        self._pre, self._href, self._text = 0, None, ""
        self.feed(text)
        self.close()
        self.errors += [f"<{tag}> never closed" for tag in self._open]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag in BLOCK and set(self._open) & {"span", "a", "code"}:
            self.errors.append(f"<{tag}> inside an inline element: {self._open[-3:]}")
        if tag not in VOID:
            self._open.append(tag)
        if "id" in found:
            if found["id"] in self.ids:
                self.errors.append(f"id {found['id']!r} used twice")
            self.ids.add(found["id"])
        if tag == "a" and found.get("href"):
            self.links.append(found["href"])
            if self._pre:
                self._href, self._text = found["href"], ""
        elif tag == "img":
            self.images.append(found.get("src") or "")
        elif tag == "link" and found.get("href"):
            self.links.append(found["href"])
        elif tag == "pre":
            self._pre += 1

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)  # `<img ... />`: a void element; `<div/>` stays open, as in HTML

    def handle_endtag(self, tag: str) -> None:
        if not self._open or self._open.pop() != tag:
            self.errors.append(f"</{tag}> does not close the last open tag")
        if tag == "pre":
            self._pre -= 1
        elif tag == "a" and self._href is not None:
            self.code_links.append((self._href, self._text))
            self._href = None

    def handle_data(self, data: str) -> None:
        if self._href is not None:
            self._text += data


@pytest.fixture(scope="module")
def site() -> Path:
    """The site, built once by the command line into a fresh folder."""
    out = Path(tempfile.mkdtemp(prefix="tinyzoo-site-"))
    assert main(["docs", "--out", str(out)]) == 0
    yield out
    shutil.rmtree(out, ignore_errors=True)


@pytest.fixture(scope="module")
def pages(site: Path) -> dict[str, Page]:
    """Every page of the site, parsed."""
    return {path.name: Page(path.read_text(encoding="utf-8")) for path in site.glob("*.html")}


def test_every_module_and_model_has_a_page(site):
    expected = {page_name(module) for module in module_files()}
    expected |= {page_name(f"tinyzoo.models.{entry.module}") for entry in zoo.CATALOGUE}
    expected |= {"index.html", "ops.html", "results.html", "reading.html", page_name("tinyzoo.autograd.ops")}
    assert expected <= {path.name for path in site.glob("*.html")}


def test_every_internal_link_and_image_resolves(site, pages):
    checked = 0
    for name, page in pages.items():
        assert all(page.images), f"{name}: an image without a source"
        for url in page.links + page.images:
            parts = urlsplit(url)
            if parts.scheme in ("http", "https", "mailto"):
                continue
            target = site / unquote(parts.path) if parts.path else site / name
            assert target.is_file(), f"{name}: {url} does not resolve"
            if parts.fragment and target.suffix == ".html":
                assert parts.fragment in pages[target.name].ids, f"{name}: no #{parts.fragment} in {target.name}"
            checked += 1
    assert checked > 1000  # the code links alone are thousands


def test_code_names_link_to_the_line_that_defines_them(pages):
    sources = {page_name(module): path.read_text(encoding="utf-8") for module, path in module_files().items()}
    linked = 0
    for name, page in pages.items():
        for href, text in page.code_links:
            page_file, _, anchor = href.partition("#L")
            if not anchor or page_file == "" or text.isdigit():
                continue  # a line-number link, or a link to a whole module
            line = sources[page_file].splitlines()[int(anchor) - 1]
            defined = re.match(r"\s*(?:async\s+)?(?:def|class)\s+(\w+)", line)
            assert defined, (name, href, text, line)
            aliased = f"{defined.group(1)} as {text}" in sources.get(name, "")  # from x import grad as autograd_grad
            assert defined.group(1) == text or aliased, (name, href, text, line)
            linked += 1
    assert linked > 500
    gat = pages[page_name("tinyzoo.models.gat")].code_links
    assert any(href.startswith(page_name("tinyzoo.models.graph_common") + "#L") for href, text in gat
               if text == "EdgeAttention")  # fmt: skip


def test_pages_are_valid_html(site, pages):
    assert {name: page.errors for name, page in pages.items() if page.errors} == {}
    html5lib = pytest.importorskip("html5lib", reason="the HTML check needs html5lib (the test extra)")
    for path in sorted(site.glob("*.html")):
        parser = html5lib.HTMLParser(strict=True)
        try:
            parser.parse(path.read_text(encoding="utf-8"))
        except html5lib.html5parser.ParseError as exc:
            pytest.fail(f"{path.name}: {exc}")


def test_model_pages_show_figures_explain_and_tape(site):
    rows = zoo_rows(ROOT / "README.md")
    for entry in zoo.CATALOGUE:
        module = f"tinyzoo.models.{entry.module}"
        text = (site / page_name(module)).read_text(encoding="utf-8")
        for row in (r for r in rows if r.module == module):
            for figure in row.figures():
                assert f'src="figures/{Path(figure).name}"' in text, (module, figure)
        if hasattr(importlib.import_module(module), "demo"):
            tape = site / "tapes" / f"{module}.svg"
            assert '<pre class="explain">' in text and "FLOPs per forward" in text, module
            assert "there is no tape to draw" in text or tape.read_text().lstrip().startswith("<?xml"), module
        else:
            assert "has no <code>demo()</code>" in text, module


def test_readme_zoo_table_has_every_model_with_a_command_and_existing_figures():
    rows = zoo_rows(ROOT / "README.md")
    assert {f"tinyzoo.models.{e.module}" for e in zoo.CATALOGUE} <= {row.module for row in rows}
    for row in rows:
        assert re.search(r"`python [^`]+`", row.command), row
        for figure in row.figures():
            assert (ROOT / figure).is_file(), figure


def test_ops_page_has_every_record_op_call_with_its_backward(site):
    text = (site / "ops.html").read_text(encoding="utf-8")
    for module, path in module_files().items():
        source = path.read_text(encoding="utf-8")
        calls = [node for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Call)
                 and getattr(node.func, "id", getattr(node.func, "attr", None)) == "record_op"]  # fmt: skip
        rules = op_rules(source)
        assert len(rules) == len(calls), module
        for rule in rules:
            assert rule.backward and f'href="{page_name(module)}#L{rule.line}"' in text, (module, rule.name)


def test_sections_hold_every_line_of_code_once():
    for module, path in module_files().items():
        source = path.read_text(encoding="utf-8")
        sections = split_sections(source)
        lines = [n for section in sections for n in section.lines]
        assert lines == sorted(set(lines)), module
        docstring_lines = {n for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Expr)
                           and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
                           for n in range(node.lineno, node.end_lineno + 1)}  # fmt: skip
        for number, line in enumerate(source.splitlines(), 1):
            is_code = line.strip() and not line.strip().startswith("#") and number not in docstring_lines
            assert not is_code or number in lines, (module, number, line)


def _browser_missing() -> str | None:
    """Why the browser test cannot run here, or None."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (the test extra)"
    for path in (BROWSER, DRIVER):
        if not os.access(path, os.X_OK):
            return f"{path} is missing: apt-get install chromium chromium-driver"
    return None


@pytest.mark.skipif(_browser_missing() is not None, reason=str(_browser_missing()))
def test_chromium_shows_pages_without_errors_or_broken_images(site, tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = BROWSER
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1500,950",
                 f"--user-data-dir={tmp_path / 'profile'}"):  # fmt: skip
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    shots = Path(os.environ.get("TINYZOO_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    gat = module_files()["tinyzoo.models.gat"]
    first_class = next(n.lineno for n in ast.parse(gat.read_text(encoding="utf-8")).body if isinstance(n, ast.ClassDef))
    opened = {"index": "index.html", "gat": f"{page_name('tinyzoo.models.gat')}#L{first_class}",
              "gpt": page_name("tinyzoo.models.gpt"), "ponder_net": page_name("tinyzoo.models.ponder_net")}  # fmt: skip
    driver = webdriver.Chrome(options=options, service=Service(DRIVER))
    try:
        for name, url in opened.items():
            driver.get((site / "index.html").as_uri().removesuffix("index.html") + url)
            errors = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
            broken = driver.execute_script(
                "return Array.from(document.images).filter(i => !i.complete || i.naturalWidth === 0).map(i => i.src)"
            )
            assert driver.title and not errors and not broken, (name, errors, broken)
            if "#" in url:  # the line anchor is there and is the target the browser scrolled to
                assert driver.execute_script("return document.querySelector(':target').id") == url.partition("#")[2]
            assert driver.save_screenshot(str(shots / f"site_{name}.png"))
            assert (shots / f"site_{name}.png").stat().st_size > 10_000
    finally:
        driver.quit()
