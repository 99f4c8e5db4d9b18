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


# The catalogue grown for issue 10: at least 10 per lab, across kinds (see KINDS).
MISTAKES.update({
 # ---------------- token_bucket
 'token_bucket/starts_empty': ('a new bucket starts with no tokens.', 'token_bucket.py',
    [('        self._tokens = self.capacity  # a new client may burst right away\n', '        self._tokens = 0.0\n')]),
 'token_bucket/no_epsilon': ('compares floats exactly: ten 0.1 s refills make 0.999... tokens.', 'token_bucket.py',
    [('            if self._tokens + _EPSILON < tokens:\n', '            if self._tokens < tokens:\n')]),
 'token_bucket/refill_time_not_moved': ('forgets to move the refill time: each call refills the whole gap again.', 'token_bucket.py',
    [('            self._last_refill = now  # fractional tokens stay in self._tokens\n', '')]),
 'token_bucket/ignores_tokens_arg': ('every request costs one token, whatever it asked for.', 'token_bucket.py',
    [('            if self._tokens + _EPSILON < tokens:\n', '            if self._tokens + _EPSILON < 1:\n'),
     ('            self._tokens = max(0.0, self._tokens - tokens)\n', '            self._tokens = max(0.0, self._tokens - 1)\n')]),
 'token_bucket/lock_per_call': ('a new lock on every call guards nothing.', 'token_bucket.py',
    [('        with self._lock:\n', '        with threading.Lock():\n')]),
 'token_bucket/refill_per_call': ('adds refill_rate per call instead of per second.', 'token_bucket.py',
    [('            self._tokens = min(self.capacity, self._tokens + elapsed * self.refill_rate)\n',
      '            self._tokens = min(self.capacity, self._tokens + self.refill_rate)\n')]),
 'token_bucket/refills_backwards': ('a clock stepping back takes tokens away.', 'token_bucket.py',
    [('            elapsed = max(0.0, now - self._last_refill)  # never refill backwards\n',
      '            elapsed = now - self._last_refill\n')]),
 'token_bucket/capacity_plus_one': ('caps at capacity + 1.', 'token_bucket.py',
    [('            self._tokens = min(self.capacity, self._tokens + elapsed * self.refill_rate)\n',
      '            self._tokens = min(self.capacity + 1, self._tokens + elapsed * self.refill_rate)\n')]),
 # ---------------- rate_limit
 'rate_limit/user_key_per_ip': ('the user layer is keyed by (user, IP).', 'rate_limit.py',
    [('        user_key = f"user:{user_id}"\n', '        user_key = f"user:{user_id}:{client_ip}"\n')]),
 'rate_limit/expiry_on_every_request': ('every request pushes the window end further away.', 'rate_limit.py',
    [('if count == 1 then\n', 'if true then\n')]),
 'rate_limit/retry_after_whole_window': ('retry_after says the whole window, not what is left of it.', 'rate_limit.py',
    [('        return ttl_ms / 1000 if ttl_ms > 0 else 0.0\n', '        return float(self.window_s) if ttl_ms > 0 else 0.0\n')]),
 'rate_limit/retry_after_ms': ('retry_after in milliseconds.', 'rate_limit.py',
    [('        return ttl_ms / 1000 if ttl_ms > 0 else 0.0\n', '        return ttl_ms if ttl_ms > 0 else 0.0\n')]),
 'rate_limit/retry_after_negative': ('retry_after passes PTTL\'s -2 / -1 through.', 'rate_limit.py',
    [('        return ttl_ms / 1000 if ttl_ms > 0 else 0.0\n', '        return ttl_ms / 1000\n')]),
 'rate_limit/retry_after_no_expiry_negative': ('retry_after handles a missing key, not a key without expiry.',
    'rate_limit.py',
    [('        return ttl_ms / 1000 if ttl_ms > 0 else 0.0\n',
      '        return ttl_ms / 1000 if ttl_ms != -2 else 0.0\n')]),
 'rate_limit/shared_layer_keys': ('both layers count in keys named by the bare id.', 'rate_limit.py',
    [('        user_key = f"user:{user_id}"\n', '        user_key = f"{user_id}"\n'),
     ('        ip_key = f"ip:{client_ip}"\n', '        ip_key = f"{client_ip}"\n')]),
 'rate_limit/verdict_without_retry_after': ('a user-layer refusal says retry_after 0.', 'rate_limit.py',
    [('            return LimitVerdict(False, "user", self.user_limiter.retry_after(user_key))\n',
      '            return LimitVerdict(False, "user", 0.0)\n')]),
 'rate_limit/expire_in_seconds': ('EXPIRE with a value in milliseconds: windows 1000 x too long.', 'rate_limit.py',
    [("    redis.call('PEXPIRE', KEYS[1], ARGV[1])\n", "    redis.call('EXPIRE', KEYS[1], ARGV[1])\n")]),
 # ---------------- stock
 'stock/buyer_recorded_from_python': ('the script takes the item, the buyer is recorded by a second command.', 'stock.py',
    [("redis.call('DECR', KEYS[1])\nredis.call('SADD', KEYS[2], ARGV[1])\n", "redis.call('DECR', KEYS[1])\n"),
     ('        return Reservation(_text(reply))\n',
      "        if _text(reply) == 'ok':\n            self.redis.sadd(self._buyers_key(product_id), user_id)\n"
      '        return Reservation(_text(reply))\n')]),
 'stock/release_check_then_act': ('release asks SISMEMBER, then SREM and INCR as separate commands.', 'stock.py',
    [('        returned = self._release(\n            keys=[self._stock_key(product_id), self._buyers_key(product_id)],\n'
      '            args=[user_id],\n        )\n        return int(returned) == 1\n',
      '        if not self.redis.sismember(self._buyers_key(product_id), user_id):\n            return False\n'
      '        self.redis.srem(self._buyers_key(product_id), user_id)\n'
      '        self.redis.incr(self._stock_key(product_id))\n        return True\n')]),
 'stock/release_two_commands': ('release: SREM, then INCR from Python (right under concurrency, not under a dropped connection).', 'stock.py',
    [('        returned = self._release(\n            keys=[self._stock_key(product_id), self._buyers_key(product_id)],\n'
      '            args=[user_id],\n        )\n        return int(returned) == 1\n',
      '        if self.redis.srem(self._buyers_key(product_id), user_id) != 1:\n            return False\n'
      '        self.redis.incr(self._stock_key(product_id))\n        return True\n')]),
 'stock/sells_at_zero': ('sold out only below zero: the last check lets one more through.', 'stock.py',
    [('if stock == nil or stock <= 0 then\n', 'if stock == nil or stock < 0 then\n')]),
 'stock/no_buyer_check': ('reserve_once never asks whether the user bought already.', 'stock.py',
    [("if redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 1 then\n    return 'already_bought'\nend\n", '')]),
 'stock/release_forgets_stock': ('release forgets the buyer but keeps the item.', 'stock.py',
    [("if redis.call('SREM', KEYS[2], ARGV[1]) == 1 then\n    redis.call('INCR', KEYS[1])\n",
      "if redis.call('SREM', KEYS[2], ARGV[1]) == 1 then\n")]),
 'stock/try_reserve_refuses_last': ('try_reserve refuses the last item (> instead of >=).', 'stock.py',
    [('        if self.decr_stock(product_id) >= 0:\n', '        if self.decr_stock(product_id) > 0:\n')]),
 'stock/restock_get_then_set': ('incr_stock reads, adds in Python, writes back.', 'stock.py',
    [('        return self.redis.incrby(self._stock_key(product_id), n)\n',
      '        value = int(self.redis.get(self._stock_key(product_id)) or 0) + n\n'
      '        self.redis.set(self._stock_key(product_id), value)\n        return value\n')]),
 'stock/release_always_true': ('release says True even when it gave nothing back.', 'stock.py',
    [('        return int(returned) == 1\n', '        return True\n')]),
 'stock/unknown_product_zero': ('get_stock says 0 for a product never loaded.', 'stock.py',
    [('        return None if value is None else int(value)\n', '        return int(value or 0)\n')]),
 # ---------------- producer
 'producer/no_mandatory': ('publishes without mandatory: an unroutable order vanishes.', 'producer.py',
    [('                mandatory=True,\n', '')]),
 'producer/swallows_unroutable': ('catches the returned message and carries on.', 'producer.py',
    [('            raise PublishError(f"order {order_id} reached no queue (was {self.queue!r} deleted?)") from exc\n',
      '            return  # the queue is gone; nothing to do\n')]),
 'producer/no_liveness_check': ('trusts a channel whose connection died while idle.', 'producer.py',
    [('        if self._channel is None or not self._channel.is_open:\n', '        if self._channel is None:\n'),
     ('            try:\n                self._connection.process_data_events(time_limit=0)\n'
      '            except (pika.exceptions.AMQPError, OSError):\n                self._discard_connection()\n',
      '            pass\n')]),
 'producer/exclusive_queue': ('declares the queue exclusive: it dies with the producer\'s connection.', 'producer.py',
    [('            channel.queue_declare(queue=self.queue, durable=True)\n',
      '            channel.queue_declare(queue=self.queue, durable=True, exclusive=True)\n')]),
 'producer/connection_per_send': ('opens a new connection for every order and never closes the old one.', 'producer.py',
    [('            channel = self._usable_channel()\n', '            channel = self._open_channel()\n')]),
 'producer/close_leaks': ('close() does not close the connection.', 'producer.py',
    [('        """Close the connection, if any. Sending again later reconnects."""\n        self._discard_connection()\n',
      '        """Close the connection, if any. Sending again later reconnects."""\n')]),
 'producer/setup_failure_leaks': ('a failed channel setup leaves its connection open.', 'producer.py',
    [('        except BaseException:\n            connection.close()\n            raise\n',
      '        except BaseException:\n            raise\n')]),
 'producer/python_repr_body': ('the body is str(order), not JSON.', 'producer.py',
    [('        body = json.dumps(order).encode("utf-8")\n', '        body = str(order).encode("utf-8")\n')]),
 'producer/swallows_errors': ('connection errors are logged away; send_order returns as if sent.', 'producer.py',
    [('            raise PublishError(f"cannot reach the broker for order {order_id}: {exc!r}") from exc\n',
      '            return  # try again with the next order\n')]),
 'producer/timeout_is_definite': ('a confirm that did not come in time is reported as a definite PublishError.',
    'producer.py',
    [('            raise PublishUnknown(f"order {order_id} sent, confirm not received: {exc!r}") from exc\n',
      '            raise PublishError(f"order {order_id} sent, confirm not received: {exc!r}") from exc\n')]),
 'producer/everything_unknown': ('every failure is reported as PublishUnknown, even the definite ones.', 'producer.py',
    [('            raise PublishError(f"cannot reach the broker for order {order_id}: {exc!r}") from exc\n',
      '            raise PublishUnknown(f"cannot reach the broker for order {order_id}: {exc!r}") from exc\n'),
     ('            raise PublishError(f"order {order_id} reached no queue (was {self.queue!r} deleted?)") from exc\n',
      '            raise PublishUnknown(f"order {order_id} reached no queue (was {self.queue!r} deleted?)") from exc\n'),
     ('            raise PublishError(f"broker refused order {order_id}") from exc\n',
      '            raise PublishUnknown(f"broker refused order {order_id}") from exc\n')]),
 'producer/nack_is_unknown': ('a nack (the broker refused the message) is reported as PublishUnknown.', 'producer.py',
    [('            raise PublishError(f"broker refused order {order_id}") from exc\n',
      '            raise PublishUnknown(f"broker refused order {order_id}") from exc\n')]),
 'producer/no_confirm_deadline': ('waits for the confirm with no time limit: a frozen broker hangs send_order.',
    'producer.py',
    [('        cancel = self._confirm_deadline(CONFIRM_TIMEOUT_S)\n', '        cancel = lambda: None  # noqa: E731\n')]),
 # ---------------- consumer
 'consumer/stock_in_second_transaction': ('handle commits the order, then runs the guarded stock update in a second transaction.', 'consumer.py',
    [('        with conn.transaction(), conn.cursor() as cur:\n            # Lock the product row first',
      '        conn.autocommit = True  # each statement its own transaction\n'
      '        with conn.cursor() as cur:\n            # Lock the product row first')]),
 'consumer/refusals_not_recorded': ('refusals are never written to order_rejections.', 'consumer.py',
    [('    if not rejections:\n        return\n', '    return\n')]),
 'consumer/sold_out_not_recorded': ('handle records no refusal when the stock is gone.', 'consumer.py',
    [('                _record_rejections(cur, [(order, "sold_out")])\n', '')]),
 'consumer/wrong_reason': ('an unknown product is recorded as sold out.', 'consumer.py',
    [('                _record_rejections(cur, [(order, "unknown_product")])\n',
      '                _record_rejections(cur, [(order, "sold_out")])\n')]),
 'consumer/nack_drops_on_error': ('a batch that failed to write is rejected without requeue: its orders are lost.', 'consumer.py',
    [('        results = self.handle_batch([order for _tag, order in batch])\n        channel.basic_ack(',
      '        try:\n            results = self.handle_batch([order for _tag, order in batch])\n'
      '        except Exception:\n'
      '            channel.basic_nack(delivery_tag=batch[-1][0], multiple=True, requeue=False)\n'
      '            return\n        channel.basic_ack(')]),
 'consumer/batch_in_autocommit': ('handle_batch runs each statement in its own transaction.', 'consumer.py',
    [('        with conn.transaction(), conn.cursor() as cur:\n            # 1. Lock',
      '        conn.autocommit = True\n        with conn.cursor() as cur:\n            # 1. Lock')]),
 'consumer/acks_first_only': ('acknowledges only the first message of each batch.', 'consumer.py',
    [('        channel.basic_ack(delivery_tag=batch[-1][0], multiple=True)  # everything up to this tag\n',
      '        channel.basic_ack(delivery_tag=batch[0][0])\n')]),
 'consumer/ack_with_wrong_tag': ('acknowledges with the order instead of its delivery tag: the ack fails after the commit.', 'consumer.py',
    [('        channel.basic_ack(delivery_tag=batch[-1][0], multiple=True)  # everything up to this tag\n',
      '        channel.basic_ack(delivery_tag=batch[-1][-1], multiple=True)\n')]),
 'consumer/requeues_poison': ('a malformed message goes back to the queue.', 'consumer.py',
    [('                    self._dead_letter(channel, method.delivery_tag, body, str(exc))\n',
      '                    channel.basic_nack(delivery_tag=method.delivery_tag, requeue=True)\n')]),
 'consumer/close_keeps_session': ('close() does nothing: the session stays open while the consumer lives.', 'consumer.py',
    [('        if self._pg is not None:\n            self._pg.close()\n            self._pg = None\n',
      '        pass  # the connection closes when the process ends\n')]),
 'consumer/handle_swallows_db_errors': ('handle answers False when the database fails: the message is acked and lost.', 'consumer.py',
    [('    def handle(self, order: dict) -> bool:\n',
      '    def handle(self, order: dict) -> bool:\n        try:\n            return self._handle(order)\n'
      '        except psycopg.Error:\n            self._pg = None\n            return False\n\n'
      '    def _handle(self, order: dict) -> bool:\n')]),
 'consumer/batch_stops_at_redelivery': ('handle_batch stops deciding at the first copy of an order handled before: the new orders after it in the batch stay pending.', 'consumer.py',
    [('                        continue  # a copy of an order already handled: nothing to record\n',
      '                        break  # a copy of an order already handled: nothing more to record\n')]),
 'consumer/guard_compares_identity': ('the stock guard compares the row count with `is not`: true for equal ints above 256, so a batch of more than 256 products is refused.', 'consumer.py',
    [('                if cur.rowcount != len(taken):\n', '                if cur.rowcount is not len(taken):\n')]),
 'consumer/batch_reasons_all_sold_out': ('handle_batch records every refusal as sold_out (second purchases and unknown products too).', 'consumer.py',
    [('                        reason = "unknown_product"\n', '                        reason = "sold_out"\n'),
     ('                        reason = "already_bought"\n', '                        reason = "sold_out"\n')]),
})


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


# Each wrong implementation: its kind, and (words of) the check that must catch it.
KINDS = ("concurrency", "partial failure", "protocol", "contract", "records", "resources")
CAUGHT_BY: dict[str, tuple[str, str]] = {
    "token_bucket/never_refills": ("contract", "refills by elapsed time"),
    "token_bucket/overfills": ("contract", "capacity"),
    "token_bucket/consumes_on_reject": ("contract", "rejected request spends nothing"),
    "token_bucket/no_lock": ("concurrency", "concurrent threads"),
    "token_bucket/wall_clock": ("contract", "injected clock"),
    "token_bucket/whole_tokens_only": ("contract", "fractional"),
    "token_bucket/lock_never_released": ("resources", "starts full"),
    "token_bucket/starts_empty": ("contract", "starts full"),
    "token_bucket/no_epsilon": ("contract", "fractional"),
    "token_bucket/refill_time_not_moved": ("contract", "refills by elapsed time"),
    "token_bucket/ignores_tokens_arg": ("contract", "rejected request spends nothing"),
    "token_bucket/lock_per_call": ("concurrency", "concurrent threads"),
    "token_bucket/refill_per_call": ("contract", "rejects when empty"),
    "token_bucket/capacity_plus_one": ("contract", "capacity"),
    "token_bucket/refills_backwards": ("contract", "clock stepping back"),
    "rate_limit/get_then_set": ("concurrency", "atomic"),
    "rate_limit/no_expiry": ("resources", "expire"),
    "rate_limit/off_by_one": ("contract", "exactly"),
    "rate_limit/ip_layer_first": ("contract", "spares the IP budget"),
    "rate_limit/user_key_per_ip": ("contract", "counts the user across addresses"),
    "rate_limit/expiry_on_every_request": ("contract", "from the first request"),
    "rate_limit/retry_after_whole_window": ("contract", "retry_after tells the truth"),
    "rate_limit/retry_after_ms": ("contract", "retry_after"),
    "rate_limit/retry_after_negative": ("contract", "retry_after"),
    "rate_limit/retry_after_no_expiry_negative": ("contract", "retry_after"),
    "rate_limit/shared_layer_keys": ("records", "separate counters"),
    "rate_limit/verdict_without_retry_after": ("contract", "a verdict's layer and retry_after"),
    "rate_limit/expire_in_seconds": ("resources", "expire"),
    "stock/no_rollback": ("contract", "never leaves stock negative"),
    "stock/check_then_act": ("concurrency", "try_reserve under 50 threads"),
    "stock/reserve_once_in_python": ("concurrency", "reserve_once under 50 threads"),
    "stock/release_without_buyer_check": ("contract", "release gives an item back once"),
    "stock/buyer_recorded_from_python": ("concurrency", "one buyer racing itself"),
    "stock/release_check_then_act": ("concurrency", "concurrent releases"),
    "stock/release_two_commands": ("partial failure", "connection lost after any command"),
    "stock/sells_at_zero": ("contract", "ok / already_bought / sold_out"),
    "stock/no_buyer_check": ("contract", "ok / already_bought / sold_out"),
    "stock/release_forgets_stock": ("records", "release gives an item back once"),
    "stock/try_reserve_refuses_last": ("contract", "never leaves stock negative"),
    "stock/restock_get_then_set": ("concurrency", "raced together keep the books"),
    "stock/release_always_true": ("contract", "release gives an item back once"),
    "stock/unknown_product_zero": ("contract", "set_stock / get_stock"),
    "producer/transient": ("protocol", "persistent"),
    "producer/no_confirms": ("protocol", "confirms"),
    "producer/non_durable_queue": ("protocol", "durable"),
    "producer/raw_errors": ("contract", "broker down"),
    "producer/no_mandatory": ("protocol", "unroutable"),
    "producer/swallows_unroutable": ("protocol", "unroutable"),
    "producer/no_liveness_check": ("partial failure", "reconnects"),
    "producer/exclusive_queue": ("protocol", "durable"),
    "producer/connection_per_send": ("resources", "one connection"),
    "producer/close_leaks": ("resources", "one connection"),
    "producer/setup_failure_leaks": ("resources", "leaves no connection open"),
    "producer/python_repr_body": ("contract", "in the queue when send_order returns"),
    "producer/swallows_errors": ("partial failure", "broker down"),
    "producer/timeout_is_definite": ("partial failure", "frozen broker"),
    "producer/everything_unknown": ("contract", "broker down"),
    "producer/nack_is_unknown": ("protocol", "publisher confirms"),
    "producer/no_confirm_deadline": ("partial failure", "frozen broker"),
    "consumer/ack_before_commit": ("partial failure", "after commit"),
    "consumer/no_on_conflict": ("contract", "redelivery"),
    "consumer/unguarded_decrement": ("contract", "guarded"),
    "consumer/stock_in_second_transaction": ("partial failure", "handle: a write failing once"),
    "consumer/refusals_not_recorded": ("records", "every refusal is recorded"),
    "consumer/sold_out_not_recorded": ("records", "every refusal is recorded"),
    "consumer/wrong_reason": ("records", "every refusal is recorded"),
    "consumer/nack_drops_on_error": ("partial failure", "after commit"),
    "consumer/batch_in_autocommit": ("partial failure", "run: a write failing once"),
    "consumer/acks_first_only": ("protocol", "empties the queue"),
    "consumer/ack_with_wrong_tag": ("records", "empties the queue"),
    "consumer/requeues_poison": ("protocol", "malformed"),
    "consumer/close_keeps_session": ("resources", "close() ends the database session"),
    "consumer/handle_swallows_db_errors": ("partial failure", "handle: a write failing once"),
    "consumer/batch_stops_at_redelivery": ("records", "handle_batch decides each order"),
    "consumer/batch_reasons_all_sold_out": ("records", "handle_batch decides each order"),
    "consumer/guard_compares_identity": ("contract", "a batch of 300 orders"),
}
