"""Alembic's entry point for facesearch galleries.

:mod:`facesearch.gallery.revisions` runs Alembic in-process on a connection it opened (and
locked); ``alembic -c facesearch/gallery/migrations/alembic.ini revision -m ...`` uses the same
file to write a new revision script, against ``FACESEARCH_DB_URL``.
"""
from __future__ import annotations

import os

from alembic import context
from sqlalchemy import create_engine

from facesearch.gallery.schema import Base


def _run(connection) -> None:
    # Batch mode: SQLite alters a table by copying it, and batch operations do that for us.
    context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    with create_engine(os.environ["FACESEARCH_DB_URL"]).connect() as conn:
        _run(conn)
