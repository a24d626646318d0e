"""User-facing errors: one clear line naming the cause, non-zero exit, nothing lost."""


class BenchError(Exception):
    """An error caused by input (config, plug-in, missing weights): shown as one line, no traceback."""


class UnknownNameError(BenchError):
    pass


class MissingWeightsError(BenchError):
    pass


class ConfigError(BenchError):
    pass


class PluginError(BenchError):
    pass


class NonFiniteLossError(BenchError):
    """Raised when a method produces NaN/inf loss or weights: the job fails, the rest continue."""


class MissingDataError(BenchError):
    """A data set is not on disk (no downloads at run time): names the root and the fetch command."""


class CheckpointMismatchError(BenchError):
    """A checkpoint's weight files differ from the digest its recipe recorded."""
