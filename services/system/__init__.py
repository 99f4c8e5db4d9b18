"""seckill.system — the flash-sale system of the source plan's diagram.

What a buyer's request passes through, box by box: the nginx front (nginx.py,
限流), the gateways (gateway.py holds every decision; gateway_flask.py,
gateway_fastapi.py and gateway_dbdirect.py are the web adapters; gateway_async.py
drives the same steps on asyncio), the Redis reservation (预减库存: the learner's
stock lab, local_stock.py for tier T4, sold_out.py, sale.py for the sale
catalogue), the queue (broker.py) and the order service that writes PostgreSQL
(order_service.py), plus what keeps the three stores in agreement (reconcile.py
对账, rebuild.py), which code runs (impl.py: the learner's labs or the reference,
lab_errors.py) and how a tier of it is started (tiers.py).

Imports only downward: seckill.stack (the servers, the database schema) and the
bottom modules (config, errors, i18n, room, credentials). Nothing here imports
seckill.measure, seckill.chaos or seckill.course.
"""
