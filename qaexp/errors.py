"""User-facing errors: each carries one line that says what is wrong and how to fix it.

Every command reports a QAExpError as that one line (`qaexp: error: ...`, `qaexp <tool>: error: ...`) with exit
status 2 and no traceback; anything else is a bug and keeps its traceback.
"""
from __future__ import annotations

import sys
TYPE_CHECKING = False  # typing's, without importing typing: errors.py loads before runtime/signals.py's handler
if TYPE_CHECKING:
    from typing import Optional

EXIT_BAD_INPUT = 2  # a bad input: config, data, paths (Hydra's own config errors exit with 1)


class QAExpError(Exception):
    """An error caused by the user's input (config, data, paths, environment), reported without a traceback."""


class ConfigError(QAExpError):
    pass


class DataError(QAExpError):
    pass


class ModelLoadError(QAExpError):
    pass


class CheckpointError(QAExpError):
    """A run's checkpoints/ (or the tokenizer saved beside them) cannot be resumed from: damaged, or another model's."""


class TrainingDiverged(QAExpError):
    """The training loss became NaN or infinite; the run stops and records `status: diverged`."""


class StorageError(QAExpError):
    """A result or model could not be written (disk full, permissions); the message names the path."""


class HubUnreachable(QAExpError):
    """The run needs files from the Hugging Face hub that are not cached, and the hub cannot be reached."""


class HubPushError(QAExpError):
    """The upload failed (no token, hub unreachable, refused); everything stays saved locally."""


class InputError(QAExpError):
    """Files given to a tool (`qaexp evaluate`, `qaexp predict`) that it cannot use."""


class ReportError(QAExpError):
    """Directories given to `qaexp report` that hold no jobs to report."""


class RunInterrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived during a run; the exit status is 128 + the signal number."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def report_error(error: BaseException | str, tool: str | None = None) -> int:
    """Print the one-line error every qaexp command uses (`qaexp [tool]: error: ...`); returns its exit status, 2."""
    print(f"qaexp{' ' + tool if tool else ''}: error: {error}", file=sys.stderr)
    return EXIT_BAD_INPUT


def first_line(err: BaseException, *, named: bool = False, limit: Optional[int] = None) -> str:
    """The first line of `err`'s message, or its type's name when it has none.

    named: prefix the type's name (for errors that are not qaexp's own, whose message alone may not say what
    failed). limit: cut longer lines to that many characters (some libraries list every option they know).
    """
    text = str(err).strip()
    if not text:
        return type(err).__name__
    line = text.splitlines()[0]
    if limit is not None and len(line) > limit:
        line = line[: limit - 3] + "..."
    return f"{type(err).__name__}: {line}" if named else line


def hub_unreachable_errors() -> tuple[type[BaseException], ...]:
    """The exceptions that mean the Hugging Face hub cannot be reached (as opposed to an answer from it).

    huggingface_hub >= 1.0 talks HTTP through httpx (1.x) or its successor httpx2 (2.x), whose transport errors
    (connection refused, DNS, timeouts, proxies) are not OSErrors as requests' were; the client is found from
    huggingface_hub's own HTTP error class, so either major works. Offline mode (HF_HUB_OFFLINE=1) counts too."""
    import importlib

    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    clients = {base.__module__.split(".")[0] for base in HfHubHTTPError.__mro__
               if base.__name__ == "HTTPError" and not base.__module__.startswith("huggingface_hub")}
    transport = tuple(importlib.import_module(client).TransportError for client in sorted(clients))
    return (OfflineModeIsEnabled, ConnectionError, TimeoutError, *transport)
