"""User-facing errors: each carries one line that says what is wrong and how to fix it."""


class QAExpError(Exception):
    """An error caused by the user's input (config, data, paths, environment), reported without a traceback."""


class ConfigError(QAExpError):
    pass


class DataError(QAExpError):
    pass


class ModelLoadError(QAExpError):
    pass


class TrainingDiverged(QAExpError):
    """The training loss became NaN or infinite; the run stops and records `status: diverged`."""


class StorageError(QAExpError):
    """A result or model could not be written (disk full, permissions); the message names the path."""


class RunInterrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived during a run; the exit status is 128 + the signal number."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum
