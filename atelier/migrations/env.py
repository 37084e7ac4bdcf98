"""Alembic environment: the URL (or an open connection) comes from `atelier.db.migrate`."""

from __future__ import annotations

from alembic import context

from atelier.db import get_engine
from atelier.models import Base

config = context.config


def run() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=Base.metadata)
        with context.begin_transaction():
            context.run_migrations()
        return
    with get_engine(config.attributes["url"]).connect() as conn:
        context.configure(connection=conn, target_metadata=Base.metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        conn.commit()


run()
