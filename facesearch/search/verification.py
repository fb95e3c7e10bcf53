"""One-to-one verification: are the people in two photos the same person?

Each photo contributes its largest face; the two embeddings' cosine similarity is compared with
the same threshold that names a face in a gallery (:data:`~facesearch.search.answers.DEFAULT_THRESHOLD`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from facesearch.errors import ImageError
from facesearch.models.analysis import Face
from facesearch.search.answers import DEFAULT_THRESHOLD
from facesearch.lazy_import import lazy_module

np = lazy_module("numpy")


@dataclass
class Verification:
    """The answer for two photos: their largest faces, how many faces each had, and the decision."""

    images: tuple[str | None, str | None]
    faces: tuple[Face, Face]
    faces_found: tuple[int, int]
    similarity: float
    threshold: float

    @property
    def same_person(self) -> bool:
        return self.similarity >= self.threshold

    def as_dict(self) -> dict:
        return {"images": list(self.images),
                "faces": [{"box": [int(round(v)) for v in f.box], "score": round(f.score, 4), "faces_found": n}
                          for f, n in zip(self.faces, self.faces_found)],
                "similarity": round(self.similarity, 4), "threshold": self.threshold,
                "same_person": self.same_person}


def verify_faces(faces_a: Sequence[Face], faces_b: Sequence[Face], *, images: tuple[str | None, str | None] = (None, None),
                 threshold: float | None = None) -> Verification:
    """Compare the largest face of each photo's faces (as :class:`~facesearch.models.analysis.FaceAnalysis`
    gives them, largest first). ``images`` names the photos in messages and the result.

    Raises:
        ImageError: a photo has no face.
    """
    for faces, name in ((faces_a, images[0]), (faces_b, images[1])):
        if not faces:
            raise ImageError(name, "no face found")
    a, b = faces_a[0], faces_b[0]
    similarity = float(np.dot(a.embedding.astype(np.float64), b.embedding.astype(np.float64)))
    return Verification(images, (a, b), (len(faces_a), len(faces_b)), similarity,
                        DEFAULT_THRESHOLD if threshold is None else float(threshold))
