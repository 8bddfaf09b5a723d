"""Alembic environment of the registry: runs on the connection handed over in code.

:func:`registry.db.alembic_config` puts the connection into ``config.attributes``; there is
no ``alembic.ini`` and no URL here (a URL in an ini file is interpolated by configparser,
which mangles passwords containing ``%``).
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from registry import alert_models as _alert_models  # noqa: F401 - their tables are in Base
from registry import care_models as _care_models  # noqa: F401 - their tables are in Base
from registry import evaluation_models as _evaluation_models  # noqa: F401
from registry import fleet_models as _fleet_models  # noqa: F401 - their tables are in Base
from registry import incident_models as _incident_models  # noqa: F401
from registry import notification_prefs_models as _notification_prefs_models  # noqa: F401
from registry import symptom_models as _symptom_models  # noqa: F401
from registry import triage_models as _triage_models  # noqa: F401 - their tables are in Base
from registry import visit_models as _visit_models  # noqa: F401 - their tables are in Base
from registry import visit_reminder_models as _visit_reminder_models  # noqa: F401
from registry import visit_schedule_models as _visit_schedule_models  # noqa: F401
from registry.errors import MigrationError
from registry.models import Base


def _run_migrations() -> None:
    if context.is_offline_mode():
        raise MigrationError("offline (SQL script) migrations are not supported")
    connection = context.config.attributes.get("connection")
    if not isinstance(connection, Connection):
        raise MigrationError("no database connection: build the config with alembic_config()")
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        # SQLite cannot ALTER most things; batch mode copies the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


_run_migrations()
