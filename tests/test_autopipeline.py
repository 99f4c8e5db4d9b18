"""The gateway's auto-pipelining Redis client, against the real Redis.

What must hold: each command gets its own answer or its own error, however
many share a round trip; a connection failure reaches every waiter (none
hangs); a cancelled command leaves its neighbours alone; and commands really
share round trips under concurrency (else it buys nothing). The wrong versions
each test catches are in WRONG below and are run by the tests of the tests.
"""

from __future__ import annotations

import asyncio
import random

import pytest
import redis as redis_lib

from seckill.system import autopipeline
from seckill.system.autopipeline import AutoPipelineRedis


class Counting(AutoPipelineRedis):
    """Counts the commands asked for and the round trips (one per batch sent)."""

    batches = commands = 0

    async def execute_command(self, *args, **options):
        type(self).commands += 1
        return await super().execute_command(*args, **options)

    async def _send(self, batch):
        type(self).batches += 1
        await super()._send(batch)


class AnswersShuffled(Counting):
    """Wrong: answers handed out in another order than the commands were queued."""

    async def _send(self, batch):
        waiters = [answer for _, _, answer in batch]
        await super()._send([(args, options, waiters[i - 1]) for i, (args, options, _) in enumerate(batch)])


class OneErrorFailsAll(Counting):
    """Wrong: one command's error raised for the whole batch (raise_on_error=True)."""

    async def _send(self, batch):
        if len(batch) == 1:
            return await super()._send(batch)
        pipe = self.pipeline(transaction=False)
        for args, options, _ in batch:
            pipe.execute_command(*args, **options)
        try:
            answers = await pipe.execute(raise_on_error=True)
        except Exception as exc:
            for _, _, answer in batch:
                if not answer.done():
                    answer.set_exception(exc)
            return
        for (_, _, answer), value in zip(batch, answers):
            if not answer.done():
                answer.set_result(value)


class NoPipeline(Counting):
    """Wrong (buys nothing): every command on its own round trip."""

    async def execute_command(self, *args, **options):
        type(self).batches += 1
        type(self).commands += 1
        return await redis_lib.asyncio.Redis.execute_command(self, *args, **options)


def _client(cls, url: str):
    cls.batches = cls.commands = 0
    return cls.from_url(url, decode_responses=True, socket_connect_timeout=1, socket_timeout=10,
                        max_connections=1024)  # as the gateway's (gateway_async.async_redis_for)


async def _mixed_load(client, seed: int, n: int = 200) -> list[tuple[str, object, object]]:
    """n concurrent buyers, each a few commands; returns (what, expected, got) for every answer."""
    rng = random.Random(seed)
    await client.set("ap:wrongtype", "a string")

    async def one(i: int):
        await asyncio.sleep(rng.random() / 1000)
        value = rng.randrange(1, 10**6)
        out = [("set", True, await client.set(f"ap:{seed}:{i}", value))]
        out.append(("get", str(value), await client.get(f"ap:{seed}:{i}")))
        out.append(("incrby", value + i, await client.incrby(f"ap:{seed}:{i}", i)))
        if i % 7 == 0:  # one wrong command among many: only it fails
            try:
                await client.lpush("ap:wrongtype", "x")
                out.append(("wrongtype", "error", "no error"))
            except redis_lib.ResponseError:
                out.append(("wrongtype", "error", "error"))
        out.append(("sismember", False, await client.sismember(f"ap:set:{seed}", str(i))))
        return out

    results = await asyncio.gather(*(one(i) for i in range(n)), return_exceptions=True)
    # a buyer whose command raised what it should not have: one wrong answer
    return [row for rows in results for row in
            ([("a buyer", "no exception", repr(rows))] if isinstance(rows, BaseException) else rows)]


def _wrong_answers(cls, url: str, seed: int) -> list:
    async def run():
        client = _client(cls, url)
        try:
            return [row for row in await _mixed_load(client, seed) if row[1] != row[2]]
        finally:
            await client.aclose()
    return asyncio.run(run())


@pytest.mark.parametrize("seed", range(5))
def test_every_command_gets_its_own_answer_and_its_own_error(stack_urls, redis_client, seed):
    assert _wrong_answers(Counting, stack_urls["redis"], seed) == []
    assert 0 < Counting.batches < Counting.commands, "commands shared no round trip"


@pytest.mark.parametrize("wrong", [AnswersShuffled, OneErrorFailsAll])
def test_the_test_catches_answers_mixed_up(stack_urls, redis_client, wrong):
    assert _wrong_answers(wrong, stack_urls["redis"], seed=1) != []


def test_concurrent_commands_share_round_trips(stack_urls, redis_client):
    """200 buyers × 4-5 commands: far fewer round trips than commands (the point of it)."""
    _wrong_answers(Counting, stack_urls["redis"], seed=2)
    assert Counting.batches * 5 < Counting.commands, f"{Counting.batches} round trips for {Counting.commands} commands"
    _wrong_answers(NoPipeline, stack_urls["redis"], seed=2)  # the test of the test
    assert NoPipeline.batches == NoPipeline.commands > 0


def test_a_lua_script_survives_script_flush(stack_urls, redis_client):
    """NOSCRIPT comes back to its own command, and redis-py's script object loads it again."""
    async def run():
        client = _client(Counting, stack_urls["redis"])
        script = client.register_script("return redis.call('INCR', KEYS[1])")
        await script(keys=["ap:lua"])
        await client.script_flush()
        got = await asyncio.gather(*(script(keys=["ap:lua"]) for _ in range(50)))
        await client.aclose()
        return sorted(got)
    assert asyncio.run(run()) == list(range(2, 52))


def test_a_cancelled_command_leaves_its_neighbours_alone(stack_urls, redis_client):
    async def run():
        client = _client(Counting, stack_urls["redis"])
        tasks = [asyncio.ensure_future(client.incr("ap:cancel")) for _ in range(20)]
        tasks[3].cancel()
        done = await asyncio.gather(*tasks, return_exceptions=True)
        await client.aclose()
        return done
    done = asyncio.run(run())
    assert isinstance(done[3], asyncio.CancelledError)
    answers = [d for i, d in enumerate(done) if i != 3]
    assert all(isinstance(a, int) for a in answers) and len(set(answers)) == 19
    assert int(redis_client.get("ap:cancel")) >= 19


def test_a_dead_redis_fails_every_waiter_and_none_hangs(stack_urls):
    """Nothing listens on the port: all 30 commands raise ConnectionError within the timeouts."""
    from seckill.stack import processes

    port = processes.free_port_near(47000)

    async def run():
        client = _client(Counting, f"redis://127.0.0.1:{port}/0")
        got = await asyncio.wait_for(
            asyncio.gather(*(client.get(f"k{i}") for i in range(30)), return_exceptions=True), timeout=10)
        await client.aclose()
        return got
    got = asyncio.run(run())
    assert all(isinstance(g, redis_lib.ConnectionError) for g in got), got


def test_the_switch(monkeypatch):
    monkeypatch.delenv(autopipeline.ENV, raising=False)
    assert autopipeline.enabled()
    for off in ("0", "off", "false", "no"):
        monkeypatch.setenv(autopipeline.ENV, off)
        assert not autopipeline.enabled()
