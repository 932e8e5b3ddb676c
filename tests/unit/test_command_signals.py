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


def test_a_deferred_signal_interrupts_when_the_outermost_block_ends_and_a_failing_block_keeps_its_error():
    import os
    import signal

    from qaexp.errors import RunInterrupted
    from qaexp.runtime.signals import interrupts_deferred, signals_as_interrupts

    reached = []
    with pytest.raises(RunInterrupted) as interrupted, signals_as_interrupts():
        with interrupts_deferred():
            with interrupts_deferred():
                os.kill(os.getpid(), signal.SIGINT)
                reached.append("inner")
            reached.append("outer")
        reached.append("after")  # never: the signal interrupts here
    assert reached == ["inner", "outer"] and interrupted.value.signum == signal.SIGINT

    with pytest.raises(OSError, match="disk full"), signals_as_interrupts():
        with interrupts_deferred():
            os.kill(os.getpid(), signal.SIGTERM)
            raise OSError("disk full")
    with signals_as_interrupts(), interrupts_deferred():  # the dropped signal does not come back later
        reached.append("later")
    assert reached[-1] == "later"
