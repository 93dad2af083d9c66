"""What readiness asks the database: does it answer, and is its schema the one we need."""

from functools import cache

from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.orm import Session

from config import PROJECT_DIR


@cache
def required_revision() -> str | None:
    """The migration this release's code needs: the head of `alembic/versions`."""
    scripts = ScriptDirectory.from_config(Config(str(PROJECT_DIR / "alembic.ini")))
    return scripts.get_current_head()


def schema_revision(session: Session) -> str | None:
    """The migration the database is at (None: never migrated); raises if it cannot answer."""
    return MigrationContext.configure(session.connection()).get_current_revision()
