"""The one exception type for mistakes in a user's input.

The CLI and the web app catch `InputError` and show its message as one line; any other exception is a
bug in biolens and keeps its traceback.
"""


class InputError(Exception):
    """A problem with the user's files or settings, worded so that a biologist can fix it."""
