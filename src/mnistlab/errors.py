"""The one base class of errors a user can cause and fix; the CLI prints them in one line."""


class UserError(Exception):
    """Bad input, a missing file, an unreachable database: not a bug, so no traceback."""
