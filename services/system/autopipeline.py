"""Redis commands issued in the same event-loop turn go out together, as one pipeline.

Why: on one machine the gateway's cost per buy is dominated by round trips,
not by Redis. Every command is a ``send()`` and a ``recv()``, and on loopback
the kernel runs the receiver's side of TCP inside the sender's system call, so
each round trip costs the gateway tens of microseconds of CPU before Redis does
any work. Under load an event loop holds dozens of buyers at the same step
(all checking their limits, all reserving); sent one by one, that is dozens of
writes where one would do. This client queues every command of one loop turn
and sends the queue as a single non-transactional pipeline: one write, one
read of all the answers, each answer handed to the command that asked.

Nothing changes for the caller: each command still gets its own answer or its
own error (a script's NOSCRIPT, a wrong type) and commands are not made atomic
together (no MULTI); only the transport is shared. The idea and the name come
from ioredis's ``enableAutoPipelining`` (Node.js). The bench measures what it
buys: ``seckill bench --speedups`` sells with it off and on in one run.

Use :func:`enabled` to read the switch (``SECKILL_REDIS_AUTOPIPELINE=0`` turns
it off) and :class:`AutoPipelineRedis` in place of ``redis.asyncio.Redis``.
"""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from seckill.config import on_unless_off

ENV = "SECKILL_REDIS_AUTOPIPELINE"


def enabled() -> bool:
    """On unless ``SECKILL_REDIS_AUTOPIPELINE`` is 0/false/off (the bench's A/B switch)."""
    return on_unless_off(ENV)


class AutoPipelineRedis(aioredis.Redis):
    """redis.asyncio.Redis whose commands of one loop turn share one pipeline round trip."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._queued: list[tuple[tuple, dict, asyncio.Future]] = []

    async def execute_command(self, *args, **options):
        loop = asyncio.get_running_loop()
        answer = loop.create_future()
        self._queued.append((args, options, answer))
        if len(self._queued) == 1:  # the first command of this turn schedules the send
            loop.call_soon(self._flush)
        return await answer

    def _flush(self) -> None:
        batch, self._queued = self._queued, []
        asyncio.ensure_future(self._send(batch))

    async def _send(self, batch: list[tuple[tuple, dict, asyncio.Future]]) -> None:
        try:
            if len(batch) == 1:  # nothing to share: the plain path, without the pipeline's bookkeeping
                args, options, _ = batch[0]
                answers = [await super().execute_command(*args, **options)]
            else:
                pipe = self.pipeline(transaction=False)
                for args, options, _ in batch:
                    pipe.execute_command(*args, **options)
                answers = await pipe.execute(raise_on_error=False)
        except BaseException as exc:  # the connection failed: every command of the batch hears it
            for _, _, answer in batch:
                if not answer.done():
                    answer.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for (_, _, answer), value in zip(batch, answers):
            if answer.done():  # its request was cancelled meanwhile
                continue
            if isinstance(value, Exception):
                answer.set_exception(value)
            else:
                answer.set_result(value)
