"""The one exception type for bad input: the CLI prints its message on one line and exits 2."""


class UserError(Exception):
    """Bad input from the user (file, key or column, and what is valid)."""

    exit_code = 2
