"""Errors raised for user mistakes: caught by the CLI and printed as one line."""


class ConfigError(ValueError):
    """A config names an unknown ``otype``, an unknown key, or a value out of range. The message names it."""
