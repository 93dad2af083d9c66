"""Draining: after SIGTERM, `/health/ready` answers 503 for SHUTDOWN_DRAIN_S, then the server stops.

A load balancer that keeps idle connections to the instances (deploy/haproxy.cfg) may be sending
a request on one just as the server closes it. Turning readiness to 503 first, while everything
else is served as before, lets its health checks take the instance out before that can happen.
The server's process (server.py) announces the SIGTERM to every worker by creating the file named
in CATALOG_DRAIN_FILE.
"""

import os

DRAIN_FILE_VARIABLE = "CATALOG_DRAIN_FILE"


def is_draining() -> bool:
    drain_file = os.environ.get(DRAIN_FILE_VARIABLE)
    return drain_file is not None and os.path.exists(drain_file)
