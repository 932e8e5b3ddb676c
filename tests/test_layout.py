"""The package's shape: the documented command aliases lead to the tools, and modules and functions stay small."""
import ast
import importlib

import pytest

from conftest import REPO

PACKAGE = REPO / "qaexp"


ALIASES = [("qaexp.predict", "qaexp.tools.predict"), ("qaexp.evaluate", "qaexp.tools.score"),
           ("qaexp.report", "qaexp.tools.report"), ("qaexp.hub", "qaexp.tools.push"),
           ("qaexp.analyze", "qaexp.tools.analyze")]


@pytest.mark.parametrize("alias, tool", ALIASES)
def test_python_m_aliases_run_the_tools(alias, tool):
    assert importlib.import_module(alias).main is importlib.import_module(tool).main


def test_console_subcommands_are_the_same_tools():
    from qaexp.cli import SUBCOMMANDS

    assert SUBCOMMANDS == {"predict": "qaexp.tools.predict", "evaluate": "qaexp.tools.score",
                           "report": "qaexp.tools.report", "serve": "qaexp.tools.serve",
                           "export": "qaexp.tools.export", "analyze": "qaexp.tools.analyze"}


def test_no_module_over_400_lines_and_no_function_over_50():
    too_long = []
    for path in sorted(PACKAGE.rglob("*.py")):
        text = path.read_text()
        if text.count("\n") > 400:
            too_long.append(f"{path.relative_to(REPO)}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 50:
                too_long.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name}: "
                                f"{node.end_lineno - node.lineno + 1} lines")
    assert not too_long
