"""Which reads a streaming replica may serve, from WAL positions (LSNs) sampled in the background.

A replica shows a write once its replay LSN reaches the LSN the write's answer carried
(`Consistency-Token`). The monitor samples the primary's LSN, then the replica's: if the replica
has replayed an LSN the primary had at time `t`, it misses at most the commits since, so it is
stale by at most `now - t`, however old the replica's sample is.
"""

import asyncio
import bisect
import logging
import re
import time
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field
from typing import Literal

from sqlalchemy import Connection, Engine, TextClause, text
from sqlalchemy.exc import SQLAlchemyError

LSN_PATTERN = r"([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})"  # PostgreSQL's text form of an LSN
_LSN = re.compile(LSN_PATTERN)

logger = logging.getLogger("catalog.replica")

# Read after a commit has returned (never inside its transaction), this is past its commit
# record: `synchronous_commit` is on, PostgreSQL's default.
_PRIMARY_POSITION = text("SELECT pg_current_wal_lsn()")
# NULL on a server that is not replaying, such as a promoted replica: it must not serve reads.
_REPLAYED_POSITION = text("SELECT pg_last_wal_replay_lsn()")


def parse_lsn(value: str) -> int | None:
    """An LSN in PostgreSQL's text form (`16/B374D848`) as a number; None if it is not one."""
    match = _LSN.fullmatch(value)
    if match is None:
        return None
    return int(match.group(1), 16) << 32 | int(match.group(2), 16)


def format_lsn(lsn: int) -> str:
    """`lsn` in PostgreSQL's text form."""
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def primary_position(connection: Connection) -> int:
    """Where the primary's log has been written up to: past every commit that has returned."""
    lsn = parse_lsn(connection.execute(_PRIMARY_POSITION).scalar_one())
    assert lsn is not None
    return lsn


@dataclass(frozen=True)
class ReplicaStatus:
    """What `/health/ready` says of the replica: its state and how stale it may be."""

    state: Literal["streaming", "lagging", "down"]
    lag_s: float | None


def _position(engine: Engine, query: TextClause, what: str) -> int | None:
    """The LSN that `query` reads on `engine`; None when it cannot be read, or is NULL."""
    try:
        with engine.connect() as connection:
            value = connection.execute(query).scalar_one()
    except SQLAlchemyError as exc:
        logger.debug("could not read the %s: %s", what, exc)
        return None
    return None if value is None else parse_lsn(value)


@dataclass(eq=False)
class ReplicaMonitor:
    """The last known WAL positions of the primary and of one replica, for this process.

    `serves()` decides at no cost; `run()` samples with engines of its own, so sampling never
    takes a connection a request is waiting for. State is replaced whole: a reader on another
    thread sees one sample or the next.
    """

    primary: Engine
    replica: Engine
    _: KW_ONLY
    max_lag_s: float
    interval_s: float
    clock: Callable[[], float] = time.monotonic
    # The primary's samples, oldest first: when each was asked for, and its LSN. Both only
    # grow, so one bisection finds the newest sample that the replica has replayed.
    _samples: tuple[tuple[float, int], ...] = field(default=(), init=False)
    _replayed: int | None = field(default=None, init=False)  # None: down, or not sampled yet

    def staleness(self) -> float | None:
        """How many seconds of the primary's commits the replica may be missing right now, at
        most; None when unknown (down, not sampled yet, or behind every sample kept)."""
        samples, replayed = self._samples, self._replayed
        if replayed is None:
            return None
        newest = bisect.bisect_right(samples, replayed, key=lambda sample: sample[1]) - 1
        if newest < 0:
            return None
        return max(0.0, self.clock() - samples[newest][0])

    def serves(self, token: int | None) -> bool:
        """Whether a read may go to the replica: it is at most DB_REPLICA_MAX_LAG_S stale,
        and it has replayed the write that `token` (a `Consistency-Token`) names, if any."""
        replayed, staleness = self._replayed, self.staleness()
        if replayed is None or staleness is None or staleness > self.max_lag_s:
            return False
        return token is None or replayed >= token

    def status(self) -> ReplicaStatus:
        staleness = self.staleness()
        if self._replayed is None:
            return ReplicaStatus("down", None)
        if staleness is None or staleness > self.max_lag_s:
            return ReplicaStatus("lagging", None if staleness is None else round(staleness, 3))
        return ReplicaStatus("streaming", round(staleness, 3))

    def record_primary(self, when: float, lsn: int) -> None:
        """The primary's LSN as asked for at `when`: past every commit returned by then."""
        samples = self._samples
        if samples and lsn < samples[-1][1]:
            # Another server answers as the primary (a standby promoted before it received the
            # very last of the old primary's log): start again from its positions.
            samples = ()
        samples = (*samples, (when, lsn))
        # A sample older than the staleness allowed can no longer make the replica fresh
        # enough; the newest such one stays, so a replica far behind still has a floor.
        horizon = when - self.max_lag_s - self.interval_s
        stale = max(0, bisect.bisect_left(samples, horizon, key=lambda sample: sample[0]) - 1)
        self._samples = samples[stale:]

    def record_replica(self, lsn: int | None) -> None:
        """The replica's replay LSN; None: unreachable, or not replaying (a primary)."""
        if lsn is None and self._replayed is not None:
            logger.warning("the replica is down or not replaying: reads go to the primary")
        self._replayed = lsn

    def mark_down(self) -> None:
        self.record_replica(None)

    def sample(self) -> None:
        """Ask the primary, then the replica: in this order (the module's docstring says why).
        Without new samples of the primary the old ones age, and reads move to the primary
        once the newest is DB_REPLICA_MAX_LAG_S old."""
        asked_at = self.clock()
        primary_lsn = _position(self.primary, _PRIMARY_POSITION, "primary's WAL position")
        replayed = _position(self.replica, _REPLAYED_POSITION, "replica's replay position")
        if primary_lsn is not None:
            self.record_primary(asked_at, primary_lsn)
        self.record_replica(replayed)

    async def run(self) -> None:
        """Sample every DB_REPLICA_CHECK_INTERVAL_S, on a worker thread, until cancelled."""
        while True:
            await asyncio.to_thread(self.sample)
            await asyncio.sleep(self.interval_s)
