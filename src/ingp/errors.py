"""Errors raised for user mistakes and failed runs: caught by the CLI and printed as one line."""


class ConfigError(ValueError):
    """A config names an unknown ``otype``, an unknown key, or a value out of range. The message names it."""


class InputError(ValueError):
    """An input file or option is unusable (unreadable, corrupt, empty, non-finite). The message names it."""


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite. The message names the step and the checkpoint that was kept."""
