"""Draining: after SIGTERM, `/health/ready` answers 503 for SHUTDOWN_DRAIN_S, then the server stops.

The server closes its listening socket and idle keep-alive connections when it stops. A load
balancer that keeps idle connections to the instances (HAProxy does: deploy/haproxy.cfg) may
be sending a request on one just as it closes, and must then fail its client's request rather
than send a POST twice. With SHUTDOWN_DRAIN_S set, SIGTERM first turns readiness to 503 while
everything else is served as before, long enough for the balancer's health checks to take the
instance out; only then does the server stop, with nothing sent its way any more.

The production server's process (server.py) takes the SIGTERM and announces it to every worker
by creating the file named in CATALOG_DRAIN_FILE; readiness looks for it.
"""

import os

DRAIN_FILE_VARIABLE = "CATALOG_DRAIN_FILE"


def is_draining() -> bool:
    """Whether SIGTERM has come and this instance is on its way out (`/health/ready`: 503)."""
    drain_file = os.environ.get(DRAIN_FILE_VARIABLE)
    return drain_file is not None and os.path.exists(drain_file)
