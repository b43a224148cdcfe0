"""Every op's forward and backward rule, read from the source with `ast` (nothing is listed by hand).

An op is a function that calls `record_op(name, forward_value, inputs, backward)`: the statements of the
function before that call compute the forward value, and `backward` is the rule (a lambda, a function
defined beside it, or a call that builds one). A new op, or a rewritten one, shows up here by itself.
"""

from __future__ import annotations

import ast
import textwrap
from dataclasses import dataclass


@dataclass(frozen=True)
class OpRule:
    """One `record_op` call: the op's name, the function holding it, its forward and its backward source."""

    name: str
    function: str
    line: int
    forward: str
    backward: str


def _is_record_op(node: ast.AST) -> bool:
    """True for a call of `record_op(...)` or `something.record_op(...)`."""
    if not isinstance(node, ast.Call):
        return False
    func = node.func
    return (isinstance(func, ast.Name) and func.id == "record_op") or (
        isinstance(func, ast.Attribute) and func.attr == "record_op"
    )


def _argument(call: ast.Call, position: int, keyword: str) -> ast.expr | None:
    """The call's argument at `position`, or given as `keyword=`."""
    if len(call.args) > position:
        return call.args[position]
    return next((k.value for k in call.keywords if k.arg == keyword), None)


def _segment(lines: list[bytes], node: ast.AST) -> str:
    """The source text of `node` (from the file's lines, as UTF-8: ast's columns count bytes), dedented."""
    first, last = node.lineno - 1, node.end_lineno - 1
    if first == last:
        text = lines[first][node.col_offset : node.end_col_offset]
    else:
        text = b" " * node.col_offset + lines[first][node.col_offset :] + b"".join(lines[first + 1 : last])
        text += lines[last][: node.end_col_offset]
    return textwrap.dedent(text.decode("utf-8"))


def op_rules(source: str) -> list[OpRule]:
    """The rule of every `record_op` call in a module's source, in the order of the file."""
    tree = ast.parse(source)
    lines = source.encode("utf-8").splitlines(keepends=True)
    top_level = {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}
    rules = []
    for function in (node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)):
        if function.name == "record_op":
            continue
        body = function.body
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
            body = body[1:]  # the docstring
        nested = {node.name: node for node in body if isinstance(node, ast.FunctionDef)}
        for index, statement in enumerate(body):
            for call in (node for node in ast.walk(statement) if _is_record_op(node)):
                if any(call in ast.walk(inner) for inner in nested.values()):
                    continue  # a record_op inside a nested function belongs to that function
                name_node = _argument(call, 0, "name")
                name = name_node.value if isinstance(name_node, ast.Constant) else _segment(lines, name_node)
                backward_node = _argument(call, 3, "backward")
                backward = _segment(lines, backward_node) if backward_node is not None else ""
                helper = None
                if isinstance(backward_node, ast.Name):
                    helper = nested.get(backward_node.id) or top_level.get(backward_node.id)
                elif isinstance(backward_node, ast.Call) and isinstance(backward_node.func, ast.Name):
                    helper = top_level.get(backward_node.func.id)
                    backward = backward + "\n\n" if helper is not None else backward
                if helper is not None:
                    backward = (backward if isinstance(backward_node, ast.Call) else "") + _segment(lines, helper)
                forward_statements = [s for s in body[:index] if s is not nested.get(getattr(s, "name", None))]
                forward = "\n".join(_segment(lines, s) for s in forward_statements)
                if not (isinstance(statement, ast.Return) and statement.value is call):
                    forward = "\n".join(filter(None, [forward, _segment(lines, statement)]))
                value = _argument(call, 1, "out_data")
                if value is not None and not isinstance(value, ast.Name):
                    forward = "\n".join(filter(None, [forward, f"{_segment(lines, value)}  # the recorded value"]))
                rules.append(OpRule(name, function.name, call.lineno, forward.strip("\n"), backward.strip("\n")))
    return sorted(rules, key=lambda rule: rule.line)
