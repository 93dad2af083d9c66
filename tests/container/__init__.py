"""The container image and compose.yaml (`make test-container`): built with podman on this
machine, run against PostgreSQL, stopped with SIGTERM, and the compose stack taken down and up.

Podman and the tools it needs are installed by .ci/install-container-tools; everything the tests
start (containers, the compose project, its network and volumes, test databases) is removed at
the end, and only the images stay, as a cache. `pytest` alone does not collect this folder
(conftest.py): `make test-container` runs it.
"""
