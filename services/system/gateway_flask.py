"""Tier 1: the gateway as a Flask app (one process; `seckill tier up flask`).

A thin adapter over gateway.Gateway, built by an application factory as in
Flask's own tutorial: ``create_app(gateway)`` takes the pieces, so tests build
it with whatever Redis, broker or limits they need, without patching.

Routes:
    POST /api/seckill/<product_id>   {"user_id": "..."}  → buy
    GET  /api/orders/<order_id>                          → pending | confirmed | rejected
    GET  /api/sales/<product_id>                         → stock left in Redis
    POST /api/admin/sales  (X-Admin-Token)               → create a sale
    GET  /healthz
"""

from __future__ import annotations

import hmac

import redis as redis_lib
from flask import Flask, Response, jsonify, request

from seckill.config import Settings, settings as load_settings
from seckill.system.gateway import (MAX_BODY, product_id_problem, Gateway, Reply, build, client_ip, error,
                                    unavailable)


def respond(reply: Reply) -> Response:
    response = jsonify(reply.body)
    response.status_code = reply.status
    response.headers.update(reply.headers)
    return response


def json_errors(app: Flask) -> None:
    """Every error a Flask tier can raise answers JSON with a message, like the gateway's own."""

    @app.errorhandler(404)
    def not_found(_):
        return respond(error(404, "not_found", "no such endpoint"))

    @app.errorhandler(405)
    def wrong_method(_):
        return respond(error(405, "method_not_allowed", "this endpoint does not take that method"))

    @app.errorhandler(413)
    def too_large(_):
        return respond(error(413, "body_too_large", f"the body must be at most {MAX_BODY} bytes"))

    @app.errorhandler(Exception)
    def unexpected(exc):
        # A bug, not the user's fault: log it, answer 500 with no internals.
        app.logger.exception("unhandled error")
        return respond(error(500, "internal_error", "unexpected error; see `seckill logs gateway`"))


def create_app(gateway: Gateway | None = None, s: Settings | None = None) -> Flask:
    s = s or load_settings()
    gw = gateway or build(s)
    app = Flask("seckill.system.gateway")
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY  # bigger bodies: 413 before we read them
    app.json.sort_keys = False

    @app.post("/api/seckill/<product_id>")
    def buy(product_id: str):
        ip = client_ip(request.remote_addr, request.headers.get("X-Forwarded-For"), gw.trusted_proxies)
        return respond(gw.buy(product_id, request.get_data(cache=False), ip))

    @app.get("/api/orders/<order_id>")
    def order(order_id: str):
        return respond(gw.order_status(order_id))

    @app.get("/api/sales/<product_id>")
    def sale_state(product_id: str):
        problem = product_id_problem(product_id)
        if problem:
            return respond(problem)
        try:
            left = gw.stock.get_stock(int(product_id))
        except redis_lib.RedisError:
            return respond(unavailable("stock service"))
        if left is None:  # 404 if PostgreSQL has no such sale either, else 503 while Redis is rebuilt
            return respond(gw._no_sale(int(product_id)))
        return respond(Reply(200, {"product_id": int(product_id), "stock_left": left}))

    @app.post("/api/admin/sales")
    def create_sale():
        from seckill.system.sale import SaleError, create_sale as create, parse_time

        # constant-time: a learner timing guesses against another's gateway learns nothing
        if not hmac.compare_digest(request.headers.get("X-Admin-Token", "").encode(), s.admin_token.encode()):
            return respond(error(403, "forbidden", "a valid X-Admin-Token header is required"))
        data = request.get_json(silent=True)
        if not isinstance(data, dict):
            return respond(error(400, "invalid_json",
                                 'the body must be JSON like {"product_id": 1, "stock": 1000}'))
        try:
            created = create(s, data.get("product_id"), data.get("stock"),
                             starts_at=parse_time(data.get("starts_at"), "starts_at"),
                             ends_at=parse_time(data.get("ends_at"), "ends_at"),
                             name=str(data.get("name") or ""), redis=gw.redis,
                             force=bool(data.get("force")))
        except SaleError as exc:
            return respond(error(422, "invalid_sale", str(exc)))
        return respond(Reply(201, created))

    @app.get("/healthz")
    def healthz():
        return respond(gw.health())

    json_errors(app)
    return app
