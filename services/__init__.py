"""seckill: the running flash-sale system and the course's tooling.

Imported inside a Jupyter kernel, it makes an unwritten or crashing lab show as
one line instead of a traceback (see lab_errors.py); elsewhere it does nothing.
"""

from seckill.system import lab_errors as _lab_errors

_lab_errors.install_in_kernel()
