"""CLI subcommands. Each module here defines ``register(subparsers)``; :mod:`vpp.cli` loads them."""
