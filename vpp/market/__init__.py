"""Aggregator-facing VPP domain: baselines, performance, settlement ledger, JMA warnings."""
