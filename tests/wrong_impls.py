"""Wrong implementations, on purpose: the graders must fail each of them with a hint.

Each variant is the reference in solutions/ with ONE plausible mistake, kept as
text replacements that are applied to the current solution when the tests run.
So a fix in solutions/ reaches every variant, and a replacement that no longer
matches fails loudly (test_every_mistake_still_applies) instead of quietly
testing stale code.
"""

from __future__ import annotations

from pathlib import Path

SOLUTIONS = Path(__file__).resolve().parent.parent / "solutions"

# "lab/variant": (the mistake, the module's file, [(text in the solution, its wrong version), ...])
MISTAKES: dict[str, tuple[str, str, list[tuple[str, str]]]] = {'consumer/ack_before_commit': ('acknowledges the batch, then writes it.',
                                'consumer.py',
                                [('        # BEGIN SOLUTION\n'
                                  '        results = self.handle_batch([order for _tag, order in batch])\n'
                                  '        channel.basic_ack(delivery_tag=batch[-1][0], multiple=True)  # '
                                  'everything up to this tag\n',
                                  '        # BEGIN SOLUTION\n'
                                  '        channel.basic_ack(delivery_tag=batch[-1][0], multiple=True)  # '
                                  'everything up to this tag\n'
                                  '        results = self.handle_batch([order for _tag, order in '
                                  'batch])\n')]),
 'consumer/no_on_conflict': ('handle inserts without tolerating a redelivered order.',
                             'consumer.py',
                             [('                WHERE NOT EXISTS (SELECT 1 FROM order_rejections WHERE '
                               'order_id = %(order_id)s)\n'
                               '                ON CONFLICT DO NOTHING\n'
                               '                RETURNING order_id\n',
                               '                WHERE NOT EXISTS (SELECT 1 FROM order_rejections WHERE '
                               'order_id = %(order_id)s)\n'
                               '                RETURNING order_id\n')]),
 'consumer/unguarded_decrement': ('the stock update does not check there is stock.',
                                  'consumer.py',
                                  [('                "UPDATE products SET stock = stock - 1 WHERE id = %s '
                                    'AND stock > 0",\n',
                                    '                "UPDATE products SET stock = stock - 1 WHERE id = '
                                    '%s",\n')]),
 'producer/no_confirms': ('publisher confirms never turned on.',
                          'producer.py',
                          [('            channel.confirm_delivery()\n', '')]),
 'producer/non_durable_queue': ('the queue is declared non-durable.',
                                'producer.py',
                                [('            channel.queue_declare(queue=self.queue, durable=True)\n',
                                  '            channel.queue_declare(queue=self.queue)\n')]),
 'producer/raw_errors': ('connection errors escape as pika exceptions.',
                         'producer.py',
                         [('        try:\n'
                           '            channel = self._usable_channel()\n'
                           '        except Exception as exc:  # refused, handshake timed out (pika raises several '
                           'kinds): nothing was sent\n'
                           '            self._discard_connection()  # a definite failure\n'
                           '            raise PublishError(f"cannot reach the broker for order {order_id}: {exc!r}") '
                           'from exc\n',
                           '        channel = self._usable_channel()\n')]),
 'producer/transient': ('messages are not persistent.',
                        'producer.py',
                        [('            delivery_mode=pika.DeliveryMode.Persistent,\n',
                          '            delivery_mode=pika.DeliveryMode.Transient,\n')]),
 'rate_limit/get_then_set': ('GET, compare, SET from Python: not atomic.',
                             'rate_limit.py',
                             [('        count = self._count_request(keys=[self._key(key)], '
                               'args=[self._window_ms])\n'
                               '        return int(count) <= self.limit\n',
                               '        redis_key = self._key(key)\n'
                               '        count = int(self.redis.get(redis_key) or 0)\n'
                               '        if count >= self.limit:\n'
                               '            return False\n'
                               '        self.redis.set(redis_key, count + 1, px=self._window_ms)\n'
                               '        return True\n')]),
 'rate_limit/ip_layer_first': ('checks the IP before the user: a greedy user burns the IP budget.',
                               'rate_limit.py',
                               [('        # BEGIN SOLUTION\n        user_key = f"user:{user_id}"\n',
                                 '        # BEGIN SOLUTION\n'
                                 '        ip_key = f"ip:{client_ip}"\n'
                                 '        if not self.ip_limiter.allow(ip_key):\n'
                                 '            return LimitVerdict(False, "ip", '
                                 'self.ip_limiter.retry_after(ip_key))\n'
                                 '        user_key = f"user:{user_id}"\n'),
                                ('        ip_key = f"ip:{client_ip}"\n'
                                 '        if not self.ip_limiter.allow(ip_key):\n'
                                 '            return LimitVerdict(False, "ip", '
                                 'self.ip_limiter.retry_after(ip_key))\n',
                                 '')]),
 'rate_limit/no_expiry': ('the counter never expires.',
                          'rate_limit.py',
                          [("    redis.call('PEXPIRE', KEYS[1], ARGV[1])\n",
                            '    -- (forgot the expiry)\n')]),
 'rate_limit/off_by_one': ('allows limit - 1 per window.',
                           'rate_limit.py',
                           [('        return int(count) <= self.limit\n',
                             '        return int(count) < self.limit\n')]),
 'stock/check_then_act': ('try_reserve reads, then decrements.',
                          'stock.py',
                          [('        if self.decr_stock(product_id) >= 0:\n',
                            '        if (self.get_stock(product_id) or 0) > 0:\n'
                            '            self.decr_stock(product_id)\n'),
                           ('        self.incr_stock(product_id)\n', '')]),
 'stock/no_rollback': ('try_reserve decrements without putting it back.',
                       'stock.py',
                       [('        if self.decr_stock(product_id) >= 0:\n'
                         '            return True\n'
                         '        self.incr_stock(product_id)\n'
                         '        return False\n',
                         '        return self.decr_stock(product_id) >= 0\n')]),
 'stock/release_without_buyer_check': ('release returns an item whoever asks, as often as asked.',
                                       'stock.py',
                                       [("if redis.call('SREM', KEYS[2], ARGV[1]) == 1 then\n"
                                         "    redis.call('INCR', KEYS[1])\n"
                                         '    return 1\n'
                                         'end\n'
                                         'return 0\n',
                                         "redis.call('SREM', KEYS[2], ARGV[1])\n"
                                         "redis.call('INCR', KEYS[1])\n"
                                         'return 1\n')]),
 'stock/reserve_once_in_python': ('reserve_once as separate commands from Python.',
                                  'stock.py',
                                  [('        reply = self._reserve_once(\n'
                                    '            keys=[self._stock_key(product_id), '
                                    'self._buyers_key(product_id)],\n'
                                    '            args=[user_id],\n'
                                    '        )\n'
                                    '        return Reservation(_text(reply))\n',
                                    '        stock_key, buyers_key = self._stock_key(product_id), '
                                    'self._buyers_key(product_id)\n'
                                    '        if self.redis.sismember(buyers_key, user_id):\n'
                                    '            return Reservation.ALREADY_BOUGHT\n'
                                    '        stock = self.redis.get(stock_key)\n'
                                    '        if stock is None or int(stock) <= 0:\n'
                                    '            return Reservation.SOLD_OUT\n'
                                    '        self.redis.decr(stock_key)\n'
                                    '        self.redis.sadd(buyers_key, user_id)\n'
                                    '        return Reservation.OK\n')]),
 'token_bucket/consumes_on_reject': ('spends the tokens even when it says no.',
                                     'token_bucket.py',
                                     [('            if self._tokens + _EPSILON < tokens:\n'
                                       '                return False\n',
                                       '            enough = self._tokens + _EPSILON >= tokens\n'),
                                      ('            return True\n', '            return enough\n')]),
 'token_bucket/lock_never_released': ('takes the lock and never gives it back (hangs).',
                                      'token_bucket.py',
                                      [('        with self._lock:\n',
                                        '        self._lock.acquire()\n        if True:\n')]),
 'token_bucket/never_refills': ('the bucket never gains tokens back.',
                                'token_bucket.py',
                                [('            self._tokens = min(self.capacity, self._tokens + elapsed * '
                                  'self.refill_rate)\n',
                                  '            self._tokens = min(self.capacity, self._tokens)\n')]),
 'token_bucket/no_lock': ('no lock around read-refill-spend.',
                          'token_bucket.py',
                          [('        with self._lock:\n', '        if True:  # no lock\n')]),
 'token_bucket/overfills': ('no cap: a long idle builds a huge burst.',
                            'token_bucket.py',
                            [('            self._tokens = min(self.capacity, self._tokens + elapsed * '
                              'self.refill_rate)\n',
                              '            self._tokens = self._tokens + elapsed * self.refill_rate\n')]),
 'token_bucket/wall_clock': ('reads time.monotonic() instead of the injected clock.',
                             'token_bucket.py',
                             [('            now = self._clock()\n', '            now = time.monotonic()\n')]),
 'token_bucket/whole_tokens_only': ('refills in whole tokens and drops the fraction.',
                                    'token_bucket.py',
                                    [('            self._tokens = min(self.capacity, self._tokens + elapsed '
                                      '* self.refill_rate)\n',
                                      '            self._tokens = min(self.capacity, self._tokens + '
                                      'int(elapsed * self.refill_rate))\n')])}


def wrong_source(variant: str) -> str:
    """The solution's source with the variant's mistake made (each text found once, in the original)."""
    why, module, edits = MISTAKES[variant]
    source = (SOLUTIONS / module).read_text()
    spots = []
    for old, new in edits:
        if source.count(old) != 1:
            raise LookupError(f"{variant}: the text to break is no longer in solutions/{module} exactly once; "
                              "update MISTAKES in tests/wrong_impls.py")
        spots.append((source.index(old), old, new))
    pieces, at = [], 0
    for start, old, new in sorted(spots):
        pieces += [source[at:start], new]
        at = start + len(old)
    return f"# A deliberately WRONG {module} for tests/test_graders.py: {why}\n" + "".join(pieces) + source[at:]


def materialize(variant: str, folder: Path) -> Path:
    """Write the variant's module into ``folder``, a folder the grader takes as an implementation."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MISTAKES[variant][1]).write_text(wrong_source(variant))
    return folder
