"""Draining: after SIGTERM, `/health/ready` answers 503 for SHUTDOWN_DRAIN_S, then the server stops.

Long enough for a load balancer's health checks to take the instance out, so that it sends
nothing on a connection the server is about to close (docs/scaling.md, "SHUTDOWN_DRAIN_S").
The production server's process (server.py) takes the SIGTERM and announces it to every worker
by creating the file named in CATALOG_DRAIN_FILE; readiness looks for it.
"""

import os

DRAIN_FILE_VARIABLE = "CATALOG_DRAIN_FILE"


def is_draining() -> bool:
    """Whether SIGTERM has come and this instance is on its way out (`/health/ready`: 503)."""
    drain_file = os.environ.get(DRAIN_FILE_VARIABLE)
    return drain_file is not None and os.path.exists(drain_file)
