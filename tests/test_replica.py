"""Where a read goes when a replica is configured: the decisions of `database.replica`, from
samples given by hand on a clock that the test moves. The real replica is tests/scale's."""

import pytest
from sqlalchemy import create_engine

from config import Settings
from database.replica import ReplicaMonitor, format_lsn, parse_lsn

MAX_LAG_S, INTERVAL_S = 5.0, 0.5


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def monitor(clock: Clock) -> ReplicaMonitor:
    engine = create_engine("sqlite://")  # never connected: the samples are given by hand
    return ReplicaMonitor(engine, engine, max_lag_s=MAX_LAG_S, interval_s=INTERVAL_S, clock=clock)


def _sample(monitor: ReplicaMonitor, clock: Clock, primary: int, replayed: int | None) -> None:
    monitor.record_primary(clock.now, primary)
    monitor.record_replica(replayed)


@pytest.mark.parametrize(
    ("text", "lsn"),
    [("0/0", 0), ("0/16B3748", 0x16B3748), ("16/B374D848", 0x16 << 32 | 0xB374D848)],
)
def test_lsn_text_round_trips(text: str, lsn: int) -> None:
    assert parse_lsn(text) == lsn
    assert format_lsn(lsn) == text
    assert parse_lsn(text.lower()) == lsn


@pytest.mark.parametrize(
    "text", ["", "0", "0/", "/0", "1/2/3", "G/0", "0/123456789", " 0/1", "-1/0", "0x1/0"]
)
def test_malformed_lsn_is_none(text: str) -> None:
    assert parse_lsn(text) is None


def test_reads_go_to_the_primary_until_both_servers_were_sampled(
    monitor: ReplicaMonitor, clock: Clock
) -> None:
    assert not monitor.serves(None)
    assert monitor.status().state == "down"

    monitor.record_primary(clock.now, 100)
    assert not monitor.serves(None)

    monitor.record_replica(100)
    assert monitor.serves(None)
    assert monitor.status().state == "streaming"


def test_staleness_is_the_age_of_the_newest_primary_sample_the_replica_has_replayed(
    monitor: ReplicaMonitor, clock: Clock
) -> None:
    _sample(monitor, clock, 100, 100)
    clock.now += 1
    _sample(monitor, clock, 200, 150)  # behind the newest sample: caught up to the one 1 s ago
    clock.now += 1

    assert monitor.staleness() == pytest.approx(2.0)
    assert monitor.status().lag_s == pytest.approx(2.0)


def test_a_replica_more_stale_than_the_max_lag_serves_no_read(
    monitor: ReplicaMonitor, clock: Clock
) -> None:
    _sample(monitor, clock, 100, 100)
    for step in range(1, 12):  # the primary writes; the replica replays nothing more
        clock.now += INTERVAL_S
        _sample(monitor, clock, 100 + step, 100)

    assert monitor.staleness() == pytest.approx(11 * INTERVAL_S)
    assert not monitor.serves(None)
    assert monitor.status().state == "lagging"
    clock.now += INTERVAL_S
    _sample(monitor, clock, 112, 111)  # caught up with the sample taken 0.5 s before
    assert monitor.serves(None)
    assert monitor.status().state == "streaming"


def test_an_idle_primary_keeps_a_replica_that_has_replayed_everything_fresh(
    monitor: ReplicaMonitor, clock: Clock
) -> None:
    for _ in range(100):
        _sample(monitor, clock, 100, 100)
        clock.now += INTERVAL_S

    assert monitor.staleness() == pytest.approx(INTERVAL_S)
    assert monitor.serves(None)


def test_a_token_is_served_by_the_replica_only_once_it_has_replayed_that_far(
    monitor: ReplicaMonitor, clock: Clock
) -> None:
    _sample(monitor, clock, 100, 100)
    _sample(monitor, clock, 200, 150)

    assert monitor.serves(None)
    assert monitor.serves(150)
    assert not monitor.serves(151)
    _sample(monitor, clock, 200, 200)
    assert monitor.serves(151)


def test_a_token_does_not_lift_the_staleness_bound(monitor: ReplicaMonitor, clock: Clock) -> None:
    _sample(monitor, clock, 100, 100)
    clock.now += MAX_LAG_S + 1

    assert not monitor.serves(50)


def test_a_replica_marked_down_serves_nothing_until_sampled_again(
    monitor: ReplicaMonitor, clock: Clock
) -> None:
    _sample(monitor, clock, 100, 100)
    monitor.mark_down()

    assert not monitor.serves(None)
    assert monitor.status().state == "down"
    assert monitor.status().lag_s is None
    _sample(monitor, clock, 100, 100)
    assert monitor.serves(None)


def test_a_primary_behind_its_last_sample_starts_the_samples_again(
    monitor: ReplicaMonitor, clock: Clock
) -> None:
    _sample(monitor, clock, 1000, 1000)
    clock.now += 1
    # A failover: the new primary's log ends a little before the old one's last position.
    _sample(monitor, clock, 990, 990)

    assert monitor.staleness() == pytest.approx(0.0)
    assert monitor.serves(None)


def test_old_samples_are_dropped_but_the_newest_too_old_one_stays(
    monitor: ReplicaMonitor, clock: Clock
) -> None:
    for step in range(1000):
        _sample(monitor, clock, step, 0)
        clock.now += INTERVAL_S

    # Bounded: the samples of about MAX_LAG_S + INTERVAL_S, plus the floor.
    assert len(monitor._samples) <= (MAX_LAG_S + INTERVAL_S) / INTERVAL_S + 2
    assert monitor.status().state == "lagging"
    assert monitor.staleness() is None  # behind every sample kept


def test_database_read_url_is_optional_and_pinned_to_psycopg2() -> None:
    primary = "postgresql://u@primary/db"

    assert Settings(database_url=primary).database_read_url is None
    assert Settings(database_url=primary, database_read_url=" ").database_read_url is None
    settings = Settings(database_url=primary, database_read_url="postgres://u@replica/db")
    assert settings.database_read_url == "postgresql+psycopg2://u@replica/db"
    assert settings.db_replica_max_lag_s == 5


@pytest.mark.parametrize(
    ("primary", "replica"),
    [("sqlite://", "postgresql://u@replica/db"), ("postgresql://u@h/db", "sqlite:///r.db")],
)
def test_a_replica_needs_postgresql_on_both_sides(primary: str, replica: str) -> None:
    with pytest.raises(ValueError, match="streaming replica of a PostgreSQL DATABASE_URL"):
        Settings(database_url=primary, database_read_url=replica)
