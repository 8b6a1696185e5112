"""Watchkeeper's exception family outside the pure core: messages say what is wrong and what to do."""


class WatchkeeperError(Exception):
    """Base of every error the CLI reports as ``watchkeeper: error: ...`` with exit code 1."""


class ConfigError(WatchkeeperError):
    """A configuration problem; the message names the file, line and field."""

    def __init__(self, path: str, line: int | None, field: str, message: str) -> None:
        where = f"{path}:{line}" if line else path
        super().__init__(f"{where}: {field}: {message}")
        self.path, self.line, self.field = path, line, field


class BrokerError(WatchkeeperError):
    """The dev broker could not be installed or started."""


class RuleFileError(WatchkeeperError):
    """A rule, SLO or anomaly rule file the worker cannot run: the message names file, line, group and rule.

    The CLI turns it into its own exit code (`watchkeeper worker` exits 2), so a supervisor can tell a bad file
    from a crash without reading the message.
    """
