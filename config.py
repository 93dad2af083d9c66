"""Settings: every knob the service reads from the environment (and `.env`), in one place."""

import difflib
import os
import re
import sys
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from dotenv import dotenv_values
from pydantic import AfterValidator, Field, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

PROJECT_DIR = Path(__file__).resolve().parent
# Request headers, in all (the contract). The production server (server.py) stops reading a
# head past this; api/limits.py refuses one that a development server let through.
MAX_HEADER_BYTES = 64 * 1024
DEFAULT_DATABASE_URL = f"sqlite:///{PROJECT_DIR / 'catalog.db'}"

# libpq's multi-host URI, `postgresql://user@h1:5432,h2:5433/db`: the part between `@` (or
# `//`) and the first `/` or `?` lists the hosts. The user and password hold no `/`, `?` or
# `@` unencoded (RFC 3986), so they end at the `@`.
_MULTIHOST_URL = re.compile(
    r"(?P<head>postgres[\w+]*://(?:[^/?@]*@)?)(?P<hosts>[^/?]*,[^/?]*)(?P<tail>.*)"
)
# One entry of the list: a name or IPv4 address, or an IPv6 address in brackets; a port or none.
_HOST_ENTRY = re.compile(r"(?:\[(?P<ipv6>[0-9A-Fa-f:.]+)\]|(?P<host>[^\[\]:]+))(?::(?P<port>\d+))?")


def _host_list(hosts: str) -> dict[str, str]:
    """libpq's host list in the form SQLAlchemy's PostgreSQL dialects document ("Specifying
    multiple fallback hosts"): libpq's own `host` and `port` keywords, comma-separated lists,
    in the query. That form, unlike `?host=h1:p1&host=h2`, also holds IPv6 addresses; a host
    without a port gets libpq's default (an empty entry)."""
    entries = []
    for entry in hosts.split(","):
        parsed = _HOST_ENTRY.fullmatch(entry)
        if parsed is None or (parsed["port"] and not 0 < int(parsed["port"]) < 65536):
            raise ValueError(
                f"has a host list entry {entry!r} that is not host, host:port or [ipv6]:port"
                " (expected e.g. postgresql://user@db1:5432,db2:5432/dbname)"
            )
        entries.append(parsed)
    query = {"host": ",".join(entry["ipv6"] or entry["host"] for entry in entries)}
    if any(entry["port"] for entry in entries):
        query["port"] = ",".join(entry["port"] or "" for entry in entries)
    return query


def normalize_database_url(raw: str) -> str:
    """Parse a database URL, pin PostgreSQL to psycopg2, and fail with one readable sentence.

    A libpq multi-host URL (`postgresql://user@h1:5432,h2:5432/db?target_session_attrs=...`,
    for failover) becomes the form SQLAlchemy parses, with the same hosts, ports and options.
    """
    multihost = _MULTIHOST_URL.fullmatch(raw.strip())
    hosts = None if multihost is None else _host_list(multihost["hosts"])
    try:
        url = make_url(raw.strip() if multihost is None else multihost["head"] + multihost["tail"])
    except ArgumentError:
        raise ValueError(
            "is not a database URL (expected e.g. postgresql://user:password@host:5432/dbname"
            " or sqlite:///./catalog.db)"
        ) from None
    except ValueError:  # SQLAlchemy's int() of a port that is not a number
        raise ValueError("has a port that is not a number (expected e.g. host:5432)") from None
    if hosts is not None:
        if "host" in url.query or "port" in url.query:
            raise ValueError("lists hosts both before the database name and in ?host= or ?port=")
        url = url.update_query_dict(hosts)
    if url.port is not None and not 0 < url.port < 65536:
        raise ValueError(f"has port {url.port}, outside 1-65535")
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        # SQLite makes its file (and its WAL beside it) in this directory: a permanent fault,
        # never one to answer with 503s.
        directory = Path(url.database).resolve().parent
        if not directory.is_dir() or not os.access(directory, os.W_OK | os.X_OK):
            raise ValueError(f"names a SQLite file in {directory}, not a writable directory")
    # URLs pasted from hosting providers say `postgres://` or `postgresql://`; SQLAlchemy 2.1
    # maps the latter to psycopg 3, so both are pinned to psycopg2, which this service ships.
    if url.drivername in ("postgres", "postgresql"):
        url = url.set(drivername="postgresql+psycopg2")
    try:
        url.get_dialect().import_dbapi()
    except NoSuchModuleError:
        raise ValueError(f"names an unknown database driver {url.drivername!r}") from None
    except ImportError as exc:
        raise ValueError(
            f"needs the driver module {exc.name!r}, which is not installed"
            " (this service ships psycopg2 for PostgreSQL, and SQLite)"
        ) from None
    return url.render_as_string(hide_password=False)


class Settings(BaseSettings):
    """What each setting means, and its unit: README.md's configuration table, .env.example."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    database_url: Annotated[str, AfterValidator(normalize_database_url)] = DEFAULT_DATABASE_URL
    db_pool_size: int = Field(default=10, ge=1)
    db_max_overflow: int = Field(default=0, ge=0)
    db_pool_timeout: float = Field(default=5.0, gt=0)
    db_pool_recycle: int = Field(default=1800, ge=-1)
    db_connect_timeout: int = Field(default=5, ge=1)
    db_statement_timeout_ms: int = Field(default=5000, ge=0)
    db_lock_timeout_ms: int = Field(default=2000, ge=0)
    db_echo: bool = False

    database_read_url: str | None = None
    db_replica_max_lag_s: float = Field(default=5.0, gt=0)
    db_replica_check_interval_s: float = Field(default=0.5, gt=0)

    api_keys: Annotated[list[str], NoDecode] = Field(default_factory=list, repr=False)
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    idempotency_ttl_s: int = Field(default=86400, ge=1)
    shutdown_drain_s: float = Field(default=0, ge=0)

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    web_concurrency: int = Field(default=1, ge=1)
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"
    log_format: Literal["text", "json"] = "text"

    @field_validator("database_read_url")
    @classmethod
    def _normalize_database_read_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None or not value.strip():
            return None
        normalized = normalize_database_url(value)
        primary = info.data.get("database_url", "")
        if not (normalized.startswith("postgresql") and primary.startswith("postgresql")):
            raise ValueError("must name a streaming replica of a PostgreSQL DATABASE_URL")
        return normalized

    @field_validator("api_keys", "cors_origins", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("log_level", "log_format", mode="before")
    @classmethod
    def _lowercase_log_level(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value


def misspelt_keys(env_file: Path = Path(".env")) -> dict[str, str]:
    """Keys of `.env` that are no setting but look like one: {key: the setting it resembles}.

    pydantic-settings ignores unknown keys (other tools share the file), so `DATABSE_URL=...`
    would silently leave the service on SQLite; the start-up log names it instead.
    """
    known = [name.upper() for name in Settings.model_fields]
    unknown = [key for key in dotenv_values(env_file) if key.upper() not in known]
    close = {key: difflib.get_close_matches(key.upper(), known, n=1, cutoff=0.8) for key in unknown}
    return {key: matches[0] for key, matches in close.items() if matches}


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings; a bad value stops start-up with one line, not a traceback."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']).upper()} {error['msg']}"
            for error in exc.errors(include_url=False, include_input=False)
        )
        sys.exit(f"catalog: invalid configuration: {problems}")
