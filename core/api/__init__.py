"""The REST API (FastAPI): settings, request and response schemas, the scoring service and the
routes (``anomaly_routes``); a file per job, all a thin layer over ``tinylogbert.pipeline``.
"""
