"""Mutation testing of one module: change one operator or constant at a time, run the module's
fast tests against each change, and report the share of changes the tests catch.

Usage: python scripts/mutate.py src/haq/runs/_journal.py tests/runs/test_journal.py [...]

Operators: comparisons (< <=, > >=, == !=, is / is not, in / not in), arithmetic (+ -, * /),
``and`` / ``or``, dropping ``not`` and unary minus, numbers (n -> n + 1), ``True`` / ``False``.
Message-only changes are left aside: strings, f-strings and the arguments of a raised
exception are never mutated. Each mutant runs in a forked child of a process that has already
imported haq and torch; the mutated source is executed into the live module, and names other
haq modules imported from it are pointed at the mutated functions and classes. A mutant is
caught if a test fails, or if the tests take longer than the timeout.

Why not mutmut 3: it maps tests to functions by running the whole test suite first, and
copies the tree into ``mutants/``; this tool needs neither, since each module comes
with the short list of test files meant to catch its mutants, and it takes minutes.
"""

from __future__ import annotations

import argparse
import ast
import copy
import importlib
import os
import signal
import sys
import time
from pathlib import Path

_COMPARE = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq,
            ast.NotEq: ast.Eq, ast.Is: ast.IsNot, ast.IsNot: ast.Is, ast.In: ast.NotIn,
            ast.NotIn: ast.In}
_BINARY = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult,
           ast.FloorDiv: ast.Mult, ast.Pow: ast.Mult, ast.Mod: ast.FloorDiv}
_BOOL = {ast.And: ast.Or, ast.Or: ast.And}


def _message_nodes(tree: ast.AST) -> set[int]:
    """ids of nodes whose change would only alter a message or a docstring."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
            for arg in [*node.exc.args, *(k.value for k in node.exc.keywords)]:
                skip.update(id(n) for n in ast.walk(arg))
        elif isinstance(node, ast.JoinedStr):
            skip.update(id(n) for n in ast.walk(node))
    return skip


def _sites(tree: ast.AST) -> list[tuple[ast.AST, str, object]]:
    """(node, what, replacement) for every single change this tool makes."""
    skip = _message_nodes(tree)
    out: list[tuple[ast.AST, str, object]] = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Compare):
            out += [(node, f"op{i}", _COMPARE[type(op)]) for i, op in enumerate(node.ops)
                    if type(op) in _COMPARE]
        elif isinstance(node, ast.BinOp | ast.AugAssign) and type(node.op) in _BINARY:
            out.append((node, "op", _BINARY[type(node.op)]))
        elif isinstance(node, ast.BoolOp):
            out.append((node, "op", _BOOL[type(node.op)]))
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not | ast.USub):
            out.append((node, "drop", None))
        elif isinstance(node, ast.Constant) and type(node.value) in (bool, int, float):
            value = (not node.value) if isinstance(node.value, bool) else node.value + 1
            out.append((node, "value", value))
    return out


class _Apply(ast.NodeTransformer):
    def __init__(self, target: ast.AST, what: str, replacement: object) -> None:
        self.target, self.what, self.replacement = target, what, replacement

    def visit(self, node: ast.AST) -> ast.AST:
        node = self.generic_visit(node)
        if getattr(node, "_site", None) is not True:
            return node
        if self.what.startswith("op") and isinstance(node, ast.Compare):
            node.ops[int(self.what[2:])] = self.replacement()  # type: ignore[operator]
        elif self.what == "op":
            node.op = self.replacement()  # type: ignore[attr-defined, operator]
        elif self.what == "drop":
            return node.operand  # type: ignore[attr-defined]
        else:
            node.value = self.replacement  # type: ignore[attr-defined]
        return node


def mutant_source(tree: ast.Module, index: int) -> tuple[str, int, str]:
    """(source, line, description) of mutant ``index``."""
    tree = copy.deepcopy(tree)
    node, what, replacement = _sites(tree)[index]
    node._site = True  # type: ignore[attr-defined]
    line = node.lineno
    before = ast.unparse(node)
    tree = ast.fix_missing_locations(_Apply(node, what, replacement).visit(tree))
    after = ast.unparse(node.operand if what == "drop" else node)  # type: ignore[attr-defined]
    return ast.unparse(tree), line, f"{before}  ->  {after}"


def _patch(module_name: str, source: str, path: str) -> None:
    """Execute ``source`` into the live module and repoint names other modules took from it."""
    module = sys.modules[module_name]
    old = {id(v): k for k, v in vars(module).items()
           if getattr(v, "__module__", None) == module_name}
    exec(compile(source, path, "exec"), vars(module))
    for other in list(sys.modules.values()):
        if other is None or other is module or not other.__name__.startswith("haq"):
            continue
        for attr, value in list(vars(other).items()):
            name = old.get(id(value))
            if name is not None and name in vars(module):
                setattr(other, attr, vars(module)[name])


def _run(module_name: str, source: str, path: str, tests: list[str], timeout: float) -> bool:
    """True if the tests catch this mutant."""
    import pytest

    pid = os.fork()
    if pid == 0:  # the child: mutate, test, report through the exit code
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        try:
            _patch(module_name, source, path)
            code = pytest.main(["-x", "-q", "-p", "no:cacheprovider", "-m", "not slow", *tests])
        except BaseException:
            code = 1
        os._exit(int(code))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status) != 0
        time.sleep(0.02)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("module", help="source file, e.g. src/haq/runs/_journal.py")
    parser.add_argument("tests", nargs="+", help="test files that should catch its mutants")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per mutant")
    parser.add_argument("--fail-under", type=float, default=0.0,
                        help="exit with status 1 if fewer than this percentage are caught")
    args = parser.parse_args()

    path = Path(args.module)
    parts = path.with_suffix("").parts
    module_name = ".".join(parts[parts.index("haq"):])
    importlib.import_module(module_name)
    import haq.cost  # noqa: F401 - warm the imports every child would repeat
    import haq.search  # noqa: F401

    tree = ast.parse(path.read_text())
    total = len(_sites(tree))
    baseline = _run(module_name, path.read_text(), str(path), args.tests, args.timeout)
    if baseline:
        sys.exit(f"the tests fail on the unmutated {path}; fix them first")
    survivors = []
    for index in range(total):
        source, line, what = mutant_source(tree, index)
        if not _run(module_name, source, str(path), args.tests, args.timeout):
            survivors.append(f"  {path}:{line}  {what}")
    killed = total - len(survivors)
    score = 100 * killed / max(total, 1)
    print(f"{path}: {killed}/{total} mutants caught ({score:.0f} %)")
    print("\n".join(survivors), flush=True)
    if score < args.fail_under:
        sys.exit(f"{path}: {score:.0f} % caught, below the required {args.fail_under:g} %")


if __name__ == "__main__":
    main()
