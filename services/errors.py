"""One base class for every error a user can cause or fix.

The CLI prints these as one line and exits non-zero; anything else is a bug
and keeps its traceback.
"""


class SeckillError(Exception):
    """Something the user can fix; the message says how."""
