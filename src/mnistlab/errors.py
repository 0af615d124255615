"""The one base class of errors a user can cause and fix; the CLI prints them in one line."""


class UserError(Exception):
    """Bad input, a missing file, an unreachable database: not a bug, so no traceback."""


def first_line(error: BaseException) -> str:
    """An exception's message cut to one line of output (its type where it has none)."""
    text = str(error).strip()
    return text.splitlines()[0][:200] if text else type(error).__name__


class ModelFileError(UserError, ValueError):
    """A model file that cannot be loaded, or is not an MNIST classifier."""
