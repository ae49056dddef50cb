"""The fuzz suite runs every CLI entry point on generated bad input (see test_cli_fuzz.py)."""

from tests.hardening.conftest import artifacts  # noqa: F401 - the shared session fixture
