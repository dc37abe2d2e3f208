"""The errors ffbench reports to its user: every one derives from FfbenchError, and the CLI entry
(cli.main) catches FfbenchError once, prints its message as one line and exits with status 2."""


class FfbenchError(Exception):
    """Bad input or a bad file, told to the user in one line naming the flag, key or file and the
    fix; never a traceback."""


class UsageError(FfbenchError):
    """A wrong flag or argument on the command line."""


class ConfigError(UsageError):
    """A sweep config (or another YAML input) that cannot be read or does not validate."""


class ResultsFileError(UsageError):
    """A results file that is missing, not in the ffbench layout, or damaged: one line naming the
    file and what is wrong."""


class ClusterError(FfbenchError, ValueError):
    """A bad or incomplete cluster description; str() is one line naming key, value and fix."""


class ParseError(FfbenchError):
    """FILE:LINE: expected WHAT: another tool's output that `ffbench import` cannot read."""

    def __init__(self, path, line, what):
        self.path, self.line, self.what = path, line, what
        super().__init__(f"{path}:{line}: expected {what}")


class EmuError(FfbenchError):
    """Setting up or tearing down the emulated cluster failed (ip/tc said why)."""
