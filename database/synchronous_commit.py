"""The synchronous-commit check: a commit the synchronous standby did not confirm is an error.

With a synchronous standby (docs/scaling.md), promoting it after the primary fails loses no
write answered 2xx, provided no commit is answered 2xx before the standby has it.
"""

import psycopg2
from psycopg2.extensions import connection as Psycopg2Connection

# PostgreSQL's words (syncrep.c, in English: the server's `lc_messages`) when a commit's wait
# for the synchronous standby is cancelled.
_COMMITTED_ON_THE_PRIMARY_ALONE = "canceling wait for synchronous replication"


class StandbyUnconfirmed(psycopg2.OperationalError):
    """An `OperationalError`, so SQLAlchemy wraps it as one and the client gets a 503."""


class ConfirmedCommitConnection(Psycopg2Connection):
    """A psycopg2 connection whose `commit()` fails unless the synchronous standby has it.

    When a commit's wait for the standby is cancelled (`pg_cancel_backend`, a pooler's query
    timeout), PostgreSQL keeps it on the primary alone and reports success with a WARNING only:
    answered 2xx, the write would be lost on failover. A 503 makes its client retry it (with its
    `Idempotency-Key`). The notices are dropped after each commit, so none leaks into the next
    transaction on this pooled connection.
    """

    def commit(self) -> None:
        self.notices.clear()
        super().commit()
        unconfirmed = _COMMITTED_ON_THE_PRIMARY_ALONE in "".join(self.notices)
        self.notices.clear()
        if unconfirmed:
            raise StandbyUnconfirmed(
                "the synchronous standby did not confirm this commit; it is on the primary only"
            )
