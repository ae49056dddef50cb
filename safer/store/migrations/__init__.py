"""Alembic migrations of the SAFER store (applied by ``safer db upgrade``)."""
