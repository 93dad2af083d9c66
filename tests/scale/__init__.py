"""Scaling out (`make test-scale`): the service past one machine, every component a real process.

PostgreSQL primaries and streaming replicas (initdb, pg_basebackup), PgBouncer, HAProxy and
several service instances, all started by the tests on free ports of 127.0.0.1 and stopped,
with their data directories removed, when the tests end. `pytest` alone does not collect this
folder (pyproject.toml): `make test` runs it as its own step.
"""
