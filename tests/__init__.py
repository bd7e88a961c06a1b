"""The test suite (a package, so that tests/drivers never shadows the drivers package)."""
