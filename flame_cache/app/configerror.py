"""The one error of configuration, shared by the modules that read sections of it."""


class ConfigError(ValueError):
    """A configuration value that cannot work; the message names it."""
