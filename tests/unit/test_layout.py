"""The package's shape: the documented command aliases lead to the tools, and modules and functions stay small."""
import ast
import importlib
import runpy
import sys

import pytest

from helpers.repo import REPO
from qaexp.tools import TOOLS

PACKAGE = REPO / "qaexp"


def _help_of(run, capsys) -> str:
    with pytest.raises(SystemExit) as stop:
        run()
    assert stop.value.code == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("tool", TOOLS)
def test_every_spelling_of_a_tool_runs_the_tool_of_its_name(tool, capsys, monkeypatch):
    """`qaexp TOOL`, `python -m qaexp TOOL` and `python -m qaexp.TOOL` (with --help) all give the help of
    qaexp/tools/TOOL.py, whose usage line reads `qaexp TOOL` (tools.parser) however it was started."""
    from qaexp import cli

    own = _help_of(lambda: importlib.import_module(f"qaexp.tools.{tool}").main(["--help"]), capsys)
    assert own.startswith(f"usage: qaexp {tool} ")
    monkeypatch.setattr(sys, "argv", [f"qaexp.{tool}", "--help"])
    assert _help_of(lambda: runpy.run_module(f"qaexp.{tool}", run_name="__main__"), capsys) == own
    importlib.import_module(f"qaexp.{tool}")  # imported, not run: no SystemExit
    monkeypatch.setattr(sys, "argv", ["qaexp", tool, "--help"])
    assert _help_of(cli.main, capsys) == own
    monkeypatch.setattr(sys, "argv", ["python -m qaexp", tool, "--help"])
    monkeypatch.delitem(sys.modules, "qaexp.__main__", raising=False)  # run fresh, as `python -m qaexp` does
    assert _help_of(lambda: runpy.run_module("qaexp", run_name="__main__", alter_sys=False), capsys) == own


def test_every_command_is_the_tool_module_of_its_name_and_every_tool_with_a_main_a_command():
    with_main = {path.stem for path in (PACKAGE / "tools").glob("*.py")
                 if any(isinstance(node, ast.FunctionDef) and node.name == "main"
                        for node in ast.parse(path.read_text()).body)}
    assert with_main == set(TOOLS)  # other modules of tools/ are pieces the tools share, not commands
    assert {path.stem for path in PACKAGE.glob("*.py")} >= set(TOOLS)  # each has its `python -m` alias


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
