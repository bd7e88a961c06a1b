"""Aggregator-facing HTTP API (FastAPI): thin routes over :mod:`vpp.market` services."""
