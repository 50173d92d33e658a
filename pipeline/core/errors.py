"""Errors a user can fix; the CLI prints their message without a traceback."""


class StageError(RuntimeError):
    """A stage cannot go on; the message names the input and what to do."""
