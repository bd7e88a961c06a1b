"""A running simulated site (Runtime at 60×) shared by the runtime tests of this package."""
from __future__ import annotations

import pytest

from .sites import start_site


@pytest.fixture(scope="package")
def site(tmp_path_factory):
    st = start_site(tmp_path_factory.mktemp("site"))
    try:
        yield st
    finally:
        st.stop()
