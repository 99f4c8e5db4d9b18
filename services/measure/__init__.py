"""seckill.measure — watching the system run.

Load: loadtest.py (locust, with locustfile.py), bench.py (wrk, the tier ladder
of `make bench`, with wrk/ scripts), openloop.py (open-loop schedules that
account for coordinated omission), burst.py and bots.py (many buyers at one
instant), scale.py (how the drain grows with the backlog), clients.py (HTTP from
distinct loopback addresses). Watching: store_sampler.py (Redis, queue and
PostgreSQL over time), invariants.py (nothing oversold, nothing lost), alerts.py
(the backlog alert). Keeping and showing: results.py (the learner's
measurements) and charts.py (plotly).

Imports only downward: seckill.system, seckill.stack and the bottom modules.
"""
