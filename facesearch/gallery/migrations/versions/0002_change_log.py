"""What changed since a generation, so indexes catch up instead of being rebuilt.

Adds the generation that stored each face, tombstones of removed faces and identities, and each
identity's embedding sum and face count (its average is then updated, not re-read). Existing
faces count as stored at generation 0; existing identities get their sums computed here, once.

Revision ID: 0002
Revises: 0001
"""
from __future__ import annotations

import numpy as np
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

#: Faces read at once while summing the existing embeddings.
_CHUNK = 20_000


def upgrade() -> None:
    with op.batch_alter_table("faces") as batch:
        batch.add_column(sa.Column("added_gen", sa.Integer(), nullable=False, server_default="0"))
        batch.create_index("ix_faces_added_gen", ["added_gen"])
    with op.batch_alter_table("identities") as batch:
        batch.add_column(sa.Column("vector_sum", sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column("face_count", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("updated_gen", sa.Integer(), nullable=False, server_default="0"))
        batch.create_index("ix_identities_updated_gen", ["updated_gen"])
    op.create_table(
        "removed_faces",
        sa.Column("face_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("face_id"),
    )
    op.create_index("ix_removed_faces_generation", "removed_faces", ["generation"])
    op.create_table(
        "removed_identities",
        sa.Column("identity_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("identity_id"),
    )
    op.create_index("ix_removed_identities_generation", "removed_identities", ["generation"])
    _sum_existing_faces(op.get_bind())


def _sum_existing_faces(connection) -> None:
    sums: dict[int, np.ndarray] = {}
    counts: dict[int, int] = {}
    last = -1
    while True:
        rows = connection.execute(sa.text(
            "SELECT id, identity_id, embedding FROM faces WHERE id > :last ORDER BY id LIMIT :n"),
            {"last": last, "n": _CHUNK}).all()
        if not rows:
            break
        for _, owner, blob in rows:
            vector = np.frombuffer(blob, dtype="<f4").astype(np.float64)
            sums[owner] = sums[owner] + vector if owner in sums else vector
            counts[owner] = counts.get(owner, 0) + 1
        last = rows[-1][0]
    for owner, total in sums.items():
        connection.execute(sa.text("UPDATE identities SET vector_sum = :s, face_count = :c WHERE id = :i"),
                           {"s": total.astype("<f8").tobytes(), "c": counts[owner], "i": owner})


def downgrade() -> None:
    op.drop_table("removed_identities")
    op.drop_table("removed_faces")
    with op.batch_alter_table("identities") as batch:
        batch.drop_index("ix_identities_updated_gen")
        batch.drop_column("updated_gen")
        batch.drop_column("face_count")
        batch.drop_column("vector_sum")
    with op.batch_alter_table("faces") as batch:
        batch.drop_index("ix_faces_added_gen")
        batch.drop_column("added_gen")
