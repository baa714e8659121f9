"""``GET /metrics`` on ``serve``: Prometheus text format of the live ingestion's ``LiveMetrics``.

Behind the API key like every route but ``/v1/health`` (Prometheus sends it with
``authorization: {credentials: KEY}`` in its scrape config).
"""
from fastapi import FastAPI
from fastapi.responses import Response
from tinylogbert.live.metrics import CONTENT_TYPE, LiveMetrics


def install_metrics(app: FastAPI, metrics: LiveMetrics, dependencies: list) -> None:
    @app.get("/metrics", include_in_schema=True, dependencies=dependencies, tags=["service"],
             response_class=Response,
             responses={200: {"content": {CONTENT_TYPE: {"schema": {"type": "string"}}},
                              "description": "Prometheus text exposition format"}})
    async def prometheus_metrics() -> Response:
        """Lines and sessions taken in, anomalies by grade, scoring latency, queue depth,
        alert deliveries, drift: Prometheus text format."""
        return Response(metrics.exposition(), media_type=CONTENT_TYPE)
