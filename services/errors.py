"""One base class for every error a user can cause or fix.

The CLI prints these as one line and exits non-zero; anything else is a bug
and keeps its traceback. In a notebook they show as one line too (IPython's
``_render_traceback_`` hook): "port 18000 for gateway is taken by …" needs no
stack of frames under it.
"""


class SeckillError(Exception):
    """Something the user can fix; the message says how."""

    def _render_traceback_(self) -> list[str]:
        from seckill.i18n import tr_message  # in the Chinese notebooks the one line is Chinese too

        return [f"\x1b[31m{type(self).__name__}\x1b[0m: {tr_message(str(self))}"]
