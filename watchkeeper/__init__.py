"""Watchkeeper's application shell: configuration, CLI, the dev broker, topic setup and process supervision."""

__version__ = "0.1.0"
