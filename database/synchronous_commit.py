"""The synchronous-commit check: a commit the synchronous standby did not confirm is an error.

With a synchronous standby (docs/scaling.md), promoting it after the primary fails loses no
write answered 2xx, provided no commit is answered 2xx before the standby has it.
"""

import psycopg2
from psycopg2.extensions import connection as Psycopg2Connection

# PostgreSQL's words (syncrep.c) when a commit's wait for the synchronous standby is cancelled.
_COMMITTED_ON_THE_PRIMARY_ALONE = "canceling wait for synchronous replication"


class StandbyUnconfirmed(psycopg2.OperationalError):
    """A commit PostgreSQL kept on the primary alone: its synchronous standby never confirmed
    it. An `OperationalError`, so SQLAlchemy wraps it as one and the client gets a 503."""


class ConfirmedCommitConnection(Psycopg2Connection):
    """A psycopg2 connection whose `commit()` fails unless the synchronous standby has it.

    When a commit's wait for the standby is cancelled (`pg_cancel_backend`, a pooler's query
    timeout), PostgreSQL keeps it on the primary alone and reports success with only a WARNING
    (docs/scaling.md, "Failover"): raising here makes it a 503, whose client retries it. Every
    commit of the service's sessions comes through here, so no crud function can miss it. The
    notices are judged per commit and then dropped: none may leak into the next transaction on
    this pooled connection. The match is on PostgreSQL's English message (`lc_messages`).
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
