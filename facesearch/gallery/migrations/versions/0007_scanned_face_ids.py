"""Scanned faces' ids are never handed out twice.

Removing a person deletes their scanned faces; on SQLite a table without ``AUTOINCREMENT``
then gives the next new face the highest deleted id again. Ids name faces for good elsewhere:
the people log's undo payloads, and the newest id a clustering has seen (a face with an id at
or below it counts as clustered). So the table is rebuilt with ``AUTOINCREMENT``, its sequence
started above every id a clustering recorded.

PostgreSQL's sequences never reuse an id: there this revision does nothing.

Revision ID: 0007
Revises: 0006
"""
from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_INDEXED = ("photo_id", "state", "identity_id", "enrolled_face_id", "cluster_id")


def _scanned_faces(name: str, autoincrement: bool) -> None:
    op.create_table(
        name,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("photo_id", sa.Integer(), nullable=False),
        sa.Column("x", sa.Float(), nullable=False),
        sa.Column("y", sa.Float(), nullable=False),
        sa.Column("w", sa.Float(), nullable=False),
        sa.Column("h", sa.Float(), nullable=False),
        sa.Column("landmarks", sa.String(length=512), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("quality", sa.Float(), nullable=False),
        sa.Column("embedding", sa.LargeBinary(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("similarity", sa.Float(), nullable=True),
        sa.Column("identity_id", sa.Integer(), nullable=True),
        sa.Column("enrolled_face_id", sa.Integer(), nullable=True),
        sa.Column("cluster_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["photo_id"], ["scanned_photos.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["identity_id"], ["identities.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["enrolled_face_id"], ["faces.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["cluster_id"], ["people_clusters.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sqlite_autoincrement=autoincrement,
    )


def _rebuild(autoincrement: bool) -> None:
    bind = op.get_bind()
    # Dropping the old table deletes, by cascade, the constraints that name its faces (foreign
    # keys are on in every connection): they are read first and put back.
    constraints = [dict(row) for row in bind.execute(sa.text("SELECT * FROM people_constraints")).mappings()]
    _scanned_faces("scanned_faces_rebuilt", autoincrement)
    op.execute("INSERT INTO scanned_faces_rebuilt SELECT * FROM scanned_faces")
    op.drop_table("scanned_faces")
    op.rename_table("scanned_faces_rebuilt", "scanned_faces")
    for column in _INDEXED:
        op.create_index(f"ix_scanned_faces_{column}", "scanned_faces", [column])
    if constraints and not bind.scalar(sa.text("SELECT count(*) FROM people_constraints")):
        table = sa.table("people_constraints", *(sa.column(name) for name in constraints[0]))
        op.bulk_insert(table, constraints)


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    _rebuild(autoincrement=True)
    seen = [int(json.loads(payload).get("upto", 0)) for (payload,) in bind.execute(sa.text(
        "SELECT payload FROM people_actions WHERE kind IN ('cluster', 'recluster')"))]
    newest = max([int(bind.scalar(sa.text("SELECT coalesce(max(id), 0) FROM scanned_faces")))] + seen)
    bind.execute(sa.text("DELETE FROM sqlite_sequence WHERE name = 'scanned_faces'"))
    bind.execute(sa.text("INSERT INTO sqlite_sequence (name, seq) VALUES ('scanned_faces', :seq)"), {"seq": newest})


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    _rebuild(autoincrement=False)
