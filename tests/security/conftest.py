"""The API test fixtures (a real app per test, one key per role) for the security suite."""
from tests.api.conftest import key_file, make_config, open_site, site  # noqa: F401
