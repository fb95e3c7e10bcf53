"""Scanned photo libraries: every face of each scanned photo, candidate people (clusters of the
unknown faces), the user's feedback on them and the log that undoes it.

Scanned faces keep their embeddings here, not in the gallery's ``faces``: an unknown face must
never answer a query nor move an identity's average. Naming a candidate person copies its faces
into ``faces`` (:mod:`facesearch.gallery.people`).

Revision ID: 0006
Revises: 0005
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "scanned_photos",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("path", sa.String(length=4096), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("scanned_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_scanned_photos_sha256", "scanned_photos", ["sha256"], unique=True)
    op.create_table(
        "people_clusters",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "scanned_faces",
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
    )
    for column in ("photo_id", "state", "identity_id", "enrolled_face_id", "cluster_id"):
        op.create_index(f"ix_scanned_faces_{column}", "scanned_faces", [column])
    op.create_table(
        "people_actions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("undone_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "people_constraints",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("face_id", sa.Integer(), nullable=False),
        sa.Column("other_face_id", sa.Integer(), nullable=True),
        sa.Column("identity_id", sa.Integer(), nullable=True),
        sa.Column("action_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["face_id"], ["scanned_faces.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["other_face_id"], ["scanned_faces.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["identity_id"], ["identities.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["action_id"], ["people_actions.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    for column in ("face_id", "other_face_id", "identity_id", "action_id"):
        op.create_index(f"ix_people_constraints_{column}", "people_constraints", [column])


def downgrade() -> None:
    op.drop_table("people_constraints")
    op.drop_table("people_actions")
    op.drop_table("scanned_faces")
    op.drop_table("people_clusters")
    op.drop_table("scanned_photos")
