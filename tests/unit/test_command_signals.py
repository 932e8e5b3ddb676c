"""Which processes qaexp/__init__.py gives its early SIGINT/SIGTERM handler (runtime/signals.this_command): the
qaexp commands only, never a script, notebook or test that imports qaexp; and the line each one prints."""
import pytest

from qaexp.runtime.signals import BEFORE_THE_RUN, TOOL_DETAIL, this_command
from qaexp.tools import TOOLS

PYTHON = "/venv/bin/python"


@pytest.mark.parametrize("argv, orig_argv, expected", [
    # `python -m MODULE ...`: sys.argv[0] is "-m" while the package is imported
    (["-m", "experiment=quickstart"], [PYTHON, "-m", "qaexp", "experiment=quickstart"], ("qaexp", BEFORE_THE_RUN)),
    (["-m", "predict", "RUN/model"], [PYTHON, "-X", "importtime", "-m", "qaexp", "predict", "RUN/model"],
     ("qaexp predict", TOOL_DETAIL)),
    (["-m", "RUN/model"], [PYTHON, "-m", "qaexp.export", "RUN/model"], ("qaexp export", TOOL_DETAIL)),
    (["/venv/bin/qaexp", "report", "multirun"], [PYTHON, "/venv/bin/qaexp", "report", "multirun"],
     ("qaexp report", TOOL_DETAIL)),
    (["/venv/bin/qaexp", "-m", "model=tiny"], [PYTHON, "/venv/bin/qaexp", "-m", "model=tiny"], ("qaexp", BEFORE_THE_RUN)),
    # anything else that imports qaexp keeps its own handlers
    (["-m", "tests"], [PYTHON, "-m", "pytest", "tests"], None),
    (["-m"], [PYTHON, "-m", "qaexp.cli"], None),
    (["-c"], [PYTHON, "-c", "import qaexp"], None),
    (["train.py", "qaexp"], [PYTHON, "train.py", "qaexp"], None),
    (["/venv/bin/submitit"], [PYTHON, "-u", "-m", "submitit.core._submit", "/logs"], None),
])
def test_only_a_qaexp_command_ends_on_a_signal_from_its_first_line(argv, orig_argv, expected):
    assert this_command(argv, orig_argv, TOOLS) == expected
