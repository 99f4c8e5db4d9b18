"""Tier 3: the gateway as a FastAPI app on uvicorn + uvloop (`seckill tier up fastapi`).

The same routes and answers as the Flask tier (gateway_flask.py), over
gateway_async.AsyncGateway. The buy endpoint reads the raw body itself so that
bad input gets exactly the Flask tier's messages; its OpenAPI schema still
describes the body, so schema-driven fuzzers know what to send.
"""

from __future__ import annotations

import os
import re
from contextlib import asynccontextmanager

import redis as redis_lib
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from seckill.config import Settings, on_unless_off, settings as load_settings
from seckill.system import fastjson
from seckill.system.gateway import MAX_BODY, product_id_problem, MAX_USER_ID, Reply, client_ip, error, unavailable
from seckill.system.gateway_async import AsyncGateway, build

BUY_BODY = {
    "required": True,
    "content": {"application/json": {"schema": {
        "type": "object", "required": ["user_id"],
        "properties": {"user_id": {"type": "string", "minLength": 1, "maxLength": MAX_USER_ID}},
    }}},
}

# Every answer but a success is {"error": code, "message": text}: documented per route, so
# clients (and schema-driven fuzzers) know each status the API can give and what it carries.
ERROR_STATUSES = {
    400: "the body is not JSON", 404: "no such product, order or endpoint",
    405: "wrong method", 409: "sold out, or this user already bought it",
    413: f"the body is larger than {MAX_BODY} bytes", 422: "the body or the sale is not right (see error)",
    429: "a rate limit (see the Retry-After header)", 503: "a dependency is down; nothing was reserved, try again",
}
# 202: the order was sent but its publisher confirm did not come back in time (an unknown outcome)
PENDING_OK = {"type": "object", "required": ["order_id", "status"], "properties": {
    "order_id": {"type": "string"}, "status": {"enum": ["pending"]}, "message": {"type": "string"}}}
ERROR_SCHEMA = {"type": "object", "required": ["error", "message"],
                "properties": {"error": {"type": "string"}, "message": {"type": "string"}}}


def documented(ok: dict, *statuses: int) -> dict:
    """The ``responses=`` of a route: its 200 body and its error answers."""
    responses = {200: {"description": "success", "content": {"application/json": {"schema": ok}}}}
    for status in (*statuses, 404, 405):
        responses[status] = {"description": ERROR_STATUSES[status],
                             "content": {"application/json": {"schema": ERROR_SCHEMA}}}
    return responses


BUY_OK = {"type": "object", "required": ["success", "order_id"],
          "properties": {"success": {"type": "boolean"}, "order_id": {"type": "string"}}}
ORDER_OK = {"type": "object", "required": ["order_id", "status"], "properties": {
    "order_id": {"type": "string"}, "status": {"enum": ["pending", "confirmed", "rejected"]}}}
SALE_OK = {"type": "object", "required": ["product_id", "stock_left"],
           "properties": {"product_id": {"type": "integer"}, "stock_left": {"type": "integer"}}}


class FastJSONResponse(JSONResponse):
    """Starlette's JSONResponse with its body written by fastjson: the same compact UTF-8 bytes,
    by orjson unless SECKILL_FAST_JSON=0 (``seckill bench --speedups`` measures it off and on)."""

    def render(self, content) -> bytes:
        return fastjson.dumps(content)


def respond(reply: Reply) -> JSONResponse:
    return FastJSONResponse(reply.body, status_code=reply.status, headers=reply.headers)


async def read_capped(request: Request) -> bytes | None:
    """The body, or None as soon as it grows past MAX_BODY (never buffer a huge upload)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_BODY:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


BUY_PATH = re.compile(r"/api/seckill/([^/]+)")
FAST_LANE_ENV = "SECKILL_BUY_FAST_LANE"  # 0/off: every buy goes through FastAPI's routing (the bench's A/B switch)


def fast_lane_enabled() -> bool:
    return on_unless_off(FAST_LANE_ENV)


class BuyFastLane:
    """ASGI middleware: ``POST /api/seckill/{id}`` goes straight to the buy handler, past FastAPI's router.

    Why: a flame graph of the top tier selling (``seckill bench --scenario seed
    --profile``) shows about a fifth of the gateway's CPU in the layers between
    the server and the handler — exception, body-limit and exit-stack
    middlewares, routing, parameter parsing — for an endpoint that reads its raw
    body itself and needs none of them. The lane calls the *same* handler the
    route declares, so answers are byte for byte the route's; the route stays on
    the app for the OpenAPI schema and for everything the lane does not take
    (another method, a trailing slash). It sits inside Starlette's
    ServerErrorMiddleware, so a crash is still the app's JSON 500.
    ``seckill bench --speedups`` measures it off and on.
    """

    def __init__(self, app, buy):
        self.app = app
        self.buy = buy

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["method"] == "POST":
            match = BUY_PATH.fullmatch(scope["path"])
            if match:
                response = await self.buy(match.group(1), Request(scope, receive))
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_local_stock_app() -> FastAPI:
    """Tier T4: the same app, each process selling from its own lease of the stock."""
    return create_app(local_stock=True)


def create_app(gateway: AsyncGateway | None = None, s: Settings | None = None,
               local_stock: bool = False) -> FastAPI:
    s = s or load_settings()
    state: dict = {"gw": gateway}

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if state["gw"] is None:
            state["gw"] = build(s, local_stock=local_stock)  # inside the server's event loop
        yield
        give_back = getattr(state["gw"].stock, "return_all", None)
        if give_back is not None:  # a clean stop hands the unsold lease back: nothing stranded
            await give_back()
        await state["gw"].producer.close()

    app = FastAPI(title="seckill gateway (FastAPI tier)", lifespan=lifespan)

    @app.post("/api/seckill/{product_id}", openapi_extra={"requestBody": BUY_BODY},
              responses={**documented(BUY_OK, 400, 409, 413, 422, 429, 503),
                         202: {"description": "sent, confirm late: pending, the item stays reserved",
                               "content": {"application/json": {"schema": PENDING_OK}}}})
    async def buy(product_id: str, request: Request):
        gw = state["gw"]
        body = await read_capped(request)
        if body is None:
            return respond(error(413, "body_too_large", f"the body must be at most {MAX_BODY} bytes"))
        peer = request.client.host if request.client else None
        ip = client_ip(peer, request.headers.get("x-forwarded-for"), gw.trusted_proxies)
        return respond(await gw.buy(product_id, body, ip))

    if fast_lane_enabled():
        app.add_middleware(BuyFastLane, buy=buy)

    @app.get("/api/orders/{order_id}", responses=documented(ORDER_OK, 503))
    async def order(order_id: str):
        return respond(await state["gw"].order_status(order_id))

    @app.get("/api/sales/{product_id}", responses=documented(SALE_OK, 503))
    async def sale_state(product_id: str):
        problem = product_id_problem(product_id)
        if problem:
            return respond(problem)
        try:
            left = await state["gw"].stock.get_stock(int(product_id))
        except (redis_lib.RedisError, OSError):
            return respond(unavailable("stock service"))
        if left is None:  # 404 if PostgreSQL has no such sale either, else 503 while Redis is rebuilt
            return respond(await state["gw"]._no_sale(int(product_id)))
        return respond(Reply(200, {"product_id": int(product_id), "stock_left": left}))

    @app.get("/healthz")
    async def healthz():
        default = "local-stock" if local_stock else "fastapi"
        return respond(await state["gw"].health(tier=os.environ.get("SECKILL_TIER", default)))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        codes = {404: ("not_found", "no such endpoint"),
                 405: ("method_not_allowed", "this endpoint does not take that method")}
        code, message = codes.get(exc.status_code, ("http_error", str(exc.detail)))
        return respond(error(exc.status_code, code, message))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        return respond(error(422, "invalid_request", "the request does not match the API"))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):
        import logging

        logging.getLogger("seckill.system.gateway").exception("unhandled error")
        return respond(error(500, "internal_error", "unexpected error; see `seckill logs gateway`"))

    return app
