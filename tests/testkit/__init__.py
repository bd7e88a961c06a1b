"""Helpers shared by the test areas: tiers, named site configs, polling waits."""
