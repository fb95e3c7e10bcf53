"""PostgreSQL galleries keep their vectors in pgvector columns beside the faces (no index files).

``face_vectors`` holds each face's embedding and ``identity_vectors`` each identity's normalised
average, both deleted with their face or identity (foreign keys). The columns are declared
without a dimension here, since the gallery's model is not known yet; the pgvector store fixes
the dimension and builds the search indexes when it first opens the gallery
(:mod:`facesearch.search.pgvector_index`). Faces stored before this revision are copied in.

On any other database (SQLite: the embedded default, with FAISS files) this revision does nothing.

Revision ID: 0005
Revises: 0004
"""
from __future__ import annotations

import numpy as np
import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

#: Rows copied at once.
_CHUNK = 5_000


def _text(vector: np.ndarray) -> str:
    # pgvector's text form; float32 repr round-trips exactly.
    return "[" + ",".join(repr(float(v)) for v in np.asarray(vector, np.float32)) + "]"


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    op.execute("CREATE EXTENSION IF NOT EXISTS vector")
    op.execute("CREATE TABLE face_vectors (face_id integer PRIMARY KEY REFERENCES faces(id) ON DELETE CASCADE, "
               "embedding vector NOT NULL)")
    op.execute("CREATE TABLE identity_vectors (identity_id integer PRIMARY KEY REFERENCES identities(id) "
               "ON DELETE CASCADE, average vector NOT NULL)")
    last = -1
    while True:
        rows = bind.execute(sa.text("SELECT id, embedding FROM faces WHERE id > :last ORDER BY id LIMIT :n"),
                            {"last": last, "n": _CHUNK}).all()
        if not rows:
            break
        bind.execute(sa.text("INSERT INTO face_vectors (face_id, embedding) VALUES (:i, CAST(:v AS vector))"),
                     [{"i": i, "v": _text(np.frombuffer(blob, "<f4"))} for i, blob in rows])
        last = rows[-1][0]
    for i, blob in bind.execute(sa.text("SELECT id, vector_sum FROM identities WHERE face_count > 0 "
                                        "AND vector_sum IS NOT NULL")).all():
        total = np.frombuffer(blob, "<f8")
        bind.execute(sa.text("INSERT INTO identity_vectors (identity_id, average) VALUES (:i, CAST(:v AS vector))"),
                     {"i": i, "v": _text(total / max(np.linalg.norm(total), 1e-12))})


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TABLE identity_vectors")
    op.execute("DROP TABLE face_vectors")
