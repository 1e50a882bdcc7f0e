"""The serving app: MLflow's scoring protocol on ``POST /invocations``, following the alias,
micro-batching, every request logged to the inference table, Prometheus metrics."""

from __future__ import annotations

import asyncio
import gc
import hmac
import logging
import os
import time
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version as package_version
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request  # at run time: FastAPI resolves the routes' annotations
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from jobs.config.base import ConfigError
from jobs.config.traffic import NO_ROUTE, SHADOW, assign
from jobs.modeling.scoring import (
    PREDICTED_LABEL,
    PREDICTION,
    SignatureMismatchError,
    positive_probability,
    signature_inputs,
)
from jobs.serving.batcher import MicroBatcher
from jobs.serving.follower import ModelFollower
from jobs.serving.inference_log import InferenceLog, NoInferenceLog
from jobs.serving.protocol import BadRequestError, parse_body
from jobs.serving.shadow import ShadowWorker
from jobs.tablestore import open_table_store

if TYPE_CHECKING:
    import pyarrow as pa

    from jobs.config.env import EnvConfig
    from jobs.config.traffic import Traffic
    from jobs.serving.batcher import MicroBatcher
    from jobs.serving.follower import ModelFollower, Served
    from jobs.serving.inference_log import InferenceLog
    from jobs.serving.shadow import ShadowWorker

log = logging.getLogger("runway.serving")


@dataclass
class Metrics:
    """The endpoint's Prometheus metrics, in a registry of its own (one per app)."""

    registry: Any
    requests: Any
    latency: Any
    batch_rows: Any
    model_loads: Any
    log_backlog: Any
    log_dropped: Any
    shadow: Any

    @classmethod
    def create(cls, log_backlog, log_dropped) -> Metrics:

        registry = CollectorRegistry()
        backlog = Gauge(
            "runway_serving_inference_log_backlog_rows",
            "rows in the WAL not yet committed to Delta",
            registry=registry,
        )
        backlog.set_function(log_backlog)
        dropped = Gauge(
            "runway_serving_inference_log_dropped_rows",
            "rows the WAL could not take (disk refused)",
            registry=registry,
        )
        dropped.set_function(log_dropped)
        frozen = Gauge(
            "runway_serving_heap_frozen_objects",
            "objects kept out of full garbage collections (settled after each model load)",
            registry=registry,
        )
        frozen.set_function(gc.get_freeze_count)
        return cls(
            registry=registry,
            requests=Counter(
                "runway_serving_requests", "requests answered", ["status", "model_version"], registry=registry
            ),
            latency=Histogram(
                "runway_serving_request_seconds",
                "time to answer /invocations",
                buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
                registry=registry,
            ),
            batch_rows=Histogram(
                "runway_serving_batch_rows",
                "rows per predict call",
                buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 1024),
                registry=registry,
            ),
            model_loads=Counter(
                "runway_serving_model_loads", "alias moves handled", ["outcome"], registry=registry
            ),
            log_backlog=backlog,
            log_dropped=dropped,
            shadow=Counter(
                "runway_serving_shadow_requests",
                "shadow copies by outcome (scored, failed, dropped)",
                ["outcome"],
                registry=registry,
            ),
        )


class Endpoint:
    """What a request needs: the served version, the batcher, the inference log, the metrics."""

    def __init__(
        self,
        config: EnvConfig,
        follower: ModelFollower,
        batcher: MicroBatcher,
        inference_log: InferenceLog,
        metrics: Metrics,
        shadow: ShadowWorker,
    ) -> None:
        self.config, self.settings = config, config.serving
        self.follower, self.batcher, self.inference_log = follower, batcher, inference_log
        self.metrics, self.shadow = metrics, shadow

    async def invoke(
        self, body: bytes | None, content_type: str
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        """(status, JSON body, headers) for one scoring request (``body`` None: it exceeded
        ``max_body_bytes``); every outcome is logged. The request meets one route of the traffic
        in force; the shadow, if any, scores a copy after the answer is ready."""

        state = self.follower.state
        request = _Request(state.primary if state is not None else None)
        if body is None:
            return self._answer(request, 413, f"the body exceeds {self.settings.max_body_bytes} bytes")
        if state is None:
            return self._answer(
                request, 503, "no model version is served yet (the alias has none, or it is loading)"
            )
        try:
            rows = parse_body(body, content_type, self.settings.max_rows_per_request)
        except BadRequestError as exc:
            return self._answer(request, 400, str(exc))
        route = assign(state.traffic, _sticky_value(rows, state.traffic.sticky_key))
        request.route, request.served = route.name, state.arms[route.name]
        answer = await self._score(request, rows)
        if state.shadow is not None and answer[0] == 200:
            copy = _Request(state.shadow, route=SHADOW, id=request.id, at=request.at)
            self.shadow.submit(lambda: self.score_shadow(copy, rows))
        return answer

    async def _score(self, request: _Request, rows: pa.Table) -> tuple[int, dict[str, Any], dict[str, str]]:
        served = request.served
        try:
            inputs, keys = self._inputs(rows, served)
        except BadRequestError as exc:
            return self._answer(request, 400, str(exc))
        try:
            proba = await self.batcher.score(served, inputs)
        except Exception as exc:  # the model failed on rows its signature accepts: a server error
            log.exception("request %s: the model failed", request.id)
            return self._answer(request, 500, f"the model failed: {type(exc).__name__}")
        self.follower.last_rows = inputs  # Arrow, kept by reference: the next version's warm-up rows
        return self._answer(request, 200, None, inputs, _predictions(proba, served), keys)

    def score_shadow(self, request: _Request, rows: pa.Table) -> None:
        """Score and log a copy of an answered request with the shadow version (in the shadow
        thread): its answer is logged with route ``shadow`` and the request's id, never returned."""

        request.started = time.perf_counter()  # the shadow's own latency
        try:
            inputs, keys = self._inputs(rows, request.served)
            proba = positive_probability(request.served.pyfunc, inputs.to_pandas())
        except Exception as exc:  # the shadow's failure is logged and counted, never answered
            self._log(request, 400 if isinstance(exc, BadRequestError) else 500, str(exc)[:300])
            return
        self._log(request, 200, None, inputs, _predictions(proba, request.served), keys)

    def _inputs(self, rows: pa.Table, served: Served):
        """(the model's inputs of the rows, the entity's keys they also carry, if any: logged so
        that labels can be joined to the answers later)."""

        try:
            inputs = signature_inputs(rows, served.model)
        except SignatureMismatchError as exc:
            raise BadRequestError(str(exc)) from None
        keys = [
            k
            for k in self.config.use_case.features.keys
            if k in rows.column_names and k not in inputs.column_names
        ]
        return inputs, rows.select(keys) if keys else None

    def _answer(
        self, request: _Request, status: int, error: str | None, inputs=None, predictions=None, keys=None
    ):
        """Log the request's rows, count it, and shape the answer."""
        latency_ms = self._log(request, status, error, inputs, predictions, keys)
        model = request.served.model if request.served is not None else None
        self.metrics.requests.labels(str(status), model.version if model else "none").inc()
        self.metrics.latency.observe(latency_ms / 1000)
        headers = {"X-Request-Id": request.id, "X-Route": request.route}
        if model is not None:
            headers.update({"X-Model-Name": model.name, "X-Model-Version": model.version})
        body = (
            {"error": error} if error else {"predictions": predictions, "model": _model_json(request.served)}
        )
        return status, body, headers

    def _log(
        self, request: _Request, status: int, error: str | None, inputs=None, predictions=None, keys=None
    ):
        """The request's rows in the inference log (one per scored row, else one); its latency (ms)."""
        latency_ms = round((time.perf_counter() - request.started) * 1000, 3)
        model = request.served.model if request.served is not None else None
        common = {
            "request_id": request.id,
            "requested_at": request.at,
            "route": request.route,
            "status": status,
            "latency_ms": latency_ms,
            "model_name": model and model.name,
            "model_version": model and model.version,
            "model_alias": model and model.alias,
            "error": error,
        }
        if inputs is None:
            rows = [{**common, "row_index": 0}]
        else:
            logged = (
                inputs.to_pylist()
                if keys is None
                else [
                    {**key, **values}
                    for key, values in zip(keys.to_pylist(), inputs.to_pylist(), strict=True)
                ]
            )
            rows = [
                {**common, "row_index": i, "inputs": values, **scored}
                for i, (values, scored) in enumerate(zip(logged, predictions, strict=True))
            ]
        self.inference_log.append(rows, request.served.input_types if request.served is not None else None)
        return latency_ms


def _predictions(proba, served: Served) -> list[dict[str, Any]]:
    labels = (proba >= served.model.threshold).astype("int32").tolist()
    return [{PREDICTION: p, PREDICTED_LABEL: label} for p, label in zip(proba.tolist(), labels, strict=True)]


def _sticky_value(rows: pa.Table, key: str | None) -> Any:
    """The request's sticky key (its first row's), None when the traffic has none or the body lacks it."""
    if not key or key not in rows.column_names:
        return None
    return rows.column(key)[0].as_py()


@dataclass
class _Request:
    """One request's identity and clock, and the route and version it met."""

    served: Served | None
    route: str = NO_ROUTE
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    started: float = field(default_factory=time.perf_counter)


def client_tokens(settings: Any) -> tuple[bytes, ...]:
    """The bearer tokens the scoring routes accept: ``serving.client_tokens_env``'s comma-separated
    ones and ``serving.client_tokens_file``'s (one a line); empty: the routes are open."""

    tokens = os.environ.get(settings.client_tokens_env, "").split(",")
    if settings.client_tokens_file is not None:
        try:
            tokens += Path(settings.client_tokens_file).read_text().splitlines()
        except OSError as exc:
            raise ConfigError(
                f"serving.client_tokens_file {settings.client_tokens_file}: {exc.strerror}"
            ) from None
    return tuple(token.strip().encode() for token in tokens if token.strip())


def authorized(tokens: tuple[bytes, ...], header: str) -> bool:
    """Whether ``Authorization: Bearer <token>`` names one of ``tokens`` (any request when none)."""
    if not tokens:
        return True
    scheme, _, given = header.partition(" ")
    return scheme.lower() == "bearer" and any(hmac.compare_digest(given.strip().encode(), t) for t in tokens)


def _model_json(served: Served) -> dict[str, Any]:
    model = served.model
    return {
        "name": model.name,
        "version": model.version,
        "alias": model.alias,
        "run_id": model.run_id,
        "threshold": model.threshold,
    }


def create_app(config: EnvConfig, pinned: Traffic | None = None) -> FastAPI:
    """The FastAPI app of ``config``'s environment: the lifespan starts the follower, the batcher
    and the inference log's flusher, and on shutdown commits what the log holds."""

    settings = config.serving
    store = open_table_store(config)
    inference_log = (
        InferenceLog(
            settings.wal_dir(config.env),
            store,
            store.name("ml", settings.inference_log.table),
            flush_rows=settings.inference_log.flush_rows,
            flush_seconds=settings.inference_log.flush_seconds,
        )
        if settings.inference_log.enabled
        else NoInferenceLog()
    )
    metrics = Metrics.create(inference_log.backlog, lambda: inference_log.dropped)
    follower = ModelFollower(
        config,
        settings.alias or config.champion_alias,
        settings.poll_seconds,
        pinned,
        on_event=lambda outcome, version, why: metrics.model_loads.labels(outcome).inc(),
        store=store,
    )
    batcher = MicroBatcher(settings.max_batch_rows, settings.max_wait_ms, on_batch=metrics.batch_rows.observe)
    shadow = ShadowWorker(
        settings.shadow_queue, on_outcome=lambda outcome: metrics.shadow.labels(outcome).inc()
    )
    endpoint = Endpoint(config, follower, batcher, inference_log, metrics, shadow)
    assistant = None
    if config.assistant is not None and settings.assistant_routes:
        from jobs.serving.assistant_endpoint import create_assistant_endpoint

        assistant = create_assistant_endpoint(config, store, shadow)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await batcher.start()
        inference_log.start()
        await asyncio.get_running_loop().run_in_executor(None, follower.check)  # serve at once when it can
        follower.start()
        if assistant is not None:
            assistant.inference_log.start()
            await asyncio.get_running_loop().run_in_executor(None, _start_assistant, assistant)
        try:
            yield
        finally:
            follower.stop()
            if assistant is not None:
                assistant.follower.stop()
            await batcher.stop()
            await asyncio.get_running_loop().run_in_executor(None, shadow.close)  # the waiting copies first
            inference_log.close()
            if assistant is not None:
                assistant.inference_log.close()

    app = FastAPI(title=f"Runway serving ({config.env})", lifespan=lifespan)
    app.state.endpoint = endpoint
    tokens = client_tokens(settings)

    def unauthorized(request: Request) -> Response | None:
        """A 401 for a scoring request without a valid bearer token (when tokens are configured)."""
        if authorized(tokens, request.headers.get("authorization", "")):
            return None
        metrics.requests.labels("401", "none").inc()
        return JSONResponse(
            {"error": "a valid bearer token is required (Authorization: Bearer <token>)"},
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )

    @app.post("/invocations")
    async def invocations(request: Request) -> Response:
        if refused := unauthorized(request):
            return refused
        body = await _bounded_body(request, settings.max_body_bytes)
        status, payload, headers = await endpoint.invoke(body, request.headers.get("content-type", ""))
        return JSONResponse(payload, status_code=status, headers=headers)

    @app.post("/assistant/ask")
    async def ask(request: Request) -> Response:
        if refused := unauthorized(request):
            return refused
        if assistant is None:
            return JSONResponse({"error": "no assistant is configured for this endpoint"}, status_code=404)
        status, payload = await assistant.ask(await _bounded_body(request, settings.max_body_bytes))
        return JSONResponse(
            payload, status_code=status, headers={"X-Request-Id": payload.get("request_id", "")}
        )

    @app.post("/assistant/feedback")
    async def feedback(request: Request) -> Response:
        if refused := unauthorized(request):
            return refused
        if assistant is None:
            return JSONResponse({"error": "no assistant is configured for this endpoint"}, status_code=404)
        status, payload = await assistant.feedback(await _bounded_body(request, settings.max_body_bytes))
        return JSONResponse(payload, status_code=status)

    @app.get("/ping")
    async def ping() -> Response:
        return PlainTextResponse("ok")

    @app.get("/health")
    async def health() -> Response:
        served = endpoint.follower.served
        if served is None:
            waiting = {"waiting_for": follower.waiting_for, "use_case": config.use_case.name}
            return JSONResponse({"status": "not ready", "serving": None, **waiting}, status_code=503)
        return JSONResponse({"status": "ready", "serving": _model_json(served)})

    @app.get("/version")
    async def version() -> Response:

        state = endpoint.follower.state
        routes = {name: _model_json(served) for name, served in state.arms.items()} if state else {}
        return JSONResponse(
            {
                "runway": package_version("runway-mlops"),
                "mlflow": package_version("mlflow"),
                "alias": follower.alias,
                "serving": state and _model_json(state.primary),
                "traffic": state and state.traffic.as_dict(),
                "routes": routes,
                "shadow": state and state.shadow and _model_json(state.shadow),
                "refused": follower.refused,
            }
        )

    @app.get("/metrics")
    async def prometheus_metrics() -> Response:

        return Response(generate_latest(endpoint.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.post("/admin/reload")
    async def reload(request: Request) -> Response:
        token = os.environ.get(settings.admin_token_env, "")
        if not token:
            return JSONResponse(
                {"error": f"admin actions are disabled: set {settings.admin_token_env}"}, status_code=403
            )
        given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(given.encode(), token.encode()):
            return JSONResponse(
                {"error": "a valid admin token is required (Authorization: Bearer <token>)"}, status_code=401
            )
        outcome = await asyncio.get_running_loop().run_in_executor(None, follower.recheck)
        served = follower.served
        return JSONResponse({"outcome": outcome or "unchanged", "serving": served and _model_json(served)})

    return app


def _start_assistant(assistant) -> None:
    """The chain's follower; a registry that does not answer yet must not stop the model's routes."""
    try:
        assistant.start()
    except Exception:
        log.exception("the assistant's routes start without a chain; the follower keeps looking")
        assistant.follower.start()


async def _bounded_body(request: Request, limit: int) -> bytes | None:
    """The body, or None when it exceeds ``limit`` bytes. An oversized body is read to its end
    (discarded, up to 16 times the limit) so the client gets its 413 rather than a reset."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size <= limit:
            chunks.append(chunk)
        elif size > 16 * limit:
            break
    return b"".join(chunks) if size <= limit else None
