"""User-facing errors: each carries one line that says what is wrong and how to fix it."""


class QAExpError(Exception):
    """An error caused by the user's input (config, data, paths, environment), reported without a traceback."""


class ConfigError(QAExpError):
    pass


class DataError(QAExpError):
    pass


class ModelLoadError(QAExpError):
    pass
