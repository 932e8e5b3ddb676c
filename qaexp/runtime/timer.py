"""How long each stage of a run took: metrics.json's `seconds`.

QAEXP_STAGE_HOOK=STAGE:PATH is for tests of interruption: on entering STAGE the run writes PATH and waits (up
to a minute) so that a signal sent then arrives in that stage, without guessing its timing with a sleep. Besides
a run's stages, `answer` is answering questions with a saved model (evaluation/answering.py: qaexp predict's),
entered once the model is loaded and the windows are built.
"""
from __future__ import annotations

import logging
import os
import time
from contextlib import contextmanager
from typing import Iterator

log = logging.getLogger(__name__)

STAGE_HOOK_ENV = "QAEXP_STAGE_HOOK"
HOOK_WAIT_SECONDS = 60


class StageTimer:
    def __init__(self):
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        started = time.perf_counter()
        stage_hook(stage)
        yield
        self.seconds[stage] = round(time.perf_counter() - started, 3)
        log.info("%s: %.1fs", stage, self.seconds[stage])


def stage_hook(stage: str) -> None:
    hooked, _, path = os.environ.get(STAGE_HOOK_ENV, "").partition(":")
    if hooked != stage or not path:
        return
    with open(path, "w", encoding="utf-8") as f:
        f.write(stage)
    deadline = time.monotonic() + HOOK_WAIT_SECONDS
    while time.monotonic() < deadline:  # the test's signal interrupts this wait
        time.sleep(0.05)
