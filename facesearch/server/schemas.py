"""The API's response bodies as pydantic models, for the OpenAPI document at ``/docs``.

Each mirrors a library ``as_dict`` shape (and so the CLI's ``--json``): the routes return those
dicts, and these models describe and check them.
"""
from __future__ import annotations

from typing import Literal, Optional

from pydantic import BaseModel, Field


class Candidate(BaseModel):
    identity: str
    similarity: float


class FaceResult(BaseModel):
    """One face of a photo and who it is (:meth:`facesearch.gallery.FaceMatch.as_dict`)."""

    box: list[int] = Field(description="[x, y, w, h] in pixels of the photo as displayed (EXIF orientation applied)")
    score: float = Field(description="the detector's confidence")
    identity: Optional[str] = Field(description="null for an unknown face")
    similarity: float = Field(description="cosine similarity of the best candidate")
    candidates: list[Candidate]
    threshold: Optional[float] = Field(default=None, description="the similarity this face needed to be named "
                                       "(the gallery's threshold, raised by centring in a calibrated gallery)")


class QueryResult(BaseModel):
    image: Optional[str] = Field(description="the uploaded file's name")
    faces: list[FaceResult]


class IdentifyResponse(BaseModel):
    """What ``facesearch query --json`` prints, one result per uploaded photo."""

    results: list[QueryResult]


class VerifiedFace(BaseModel):
    box: list[int]
    score: float
    faces_found: int


class VerifyResponse(BaseModel):
    images: list[Optional[str]]
    faces: list[VerifiedFace]
    similarity: float
    threshold: float
    same_person: bool


class Identity(BaseModel):
    """One row of ``facesearch list --json``."""

    name: str
    faces: int
    images: int


class Enrolled(BaseModel):
    path: str
    identity: str


class MultipleFaces(BaseModel):
    path: str
    faces: int


class PhotoError(BaseModel):
    path: str
    error: str


class EnrollReport(BaseModel):
    """What ``facesearch enroll --json`` prints."""

    enrolled: list[Enrolled]
    duplicates: list[Enrolled]
    no_face: list[str]
    multiple_faces: list[MultipleFaces]
    errors: list[PhotoError]
    identities: list[str]


class Removed(BaseModel):
    removed: str
    faces: int


class Renamed(BaseModel):
    renamed: str
    to: str


class RenameRequest(BaseModel):
    name: str = Field(min_length=1, max_length=256, description="the new name; merges into it if it exists")


class StoredFace(BaseModel):
    id: int
    identity: str
    box: list[int]
    score: float
    quality: float
    photo: str = Field(description="the source photo's file name")


class RemovedFace(BaseModel):
    removed_face: int
    identity: str
    faces_left: int


class Limits(BaseModel):
    max_upload_bytes: int
    max_request_bytes: int
    max_pixels: int
    max_files: int


class Info(BaseModel):
    version: str
    model: str
    identities: int
    faces: int
    generation: int
    threshold: float = Field(description="The similarity at which faces are named unless a request says otherwise.")
    calibration: dict | None = Field(description="How the threshold was calibrated (None: the fixed default).")
    ready: bool
    keys_required: bool
    limits: Limits
    batching: dict


class Health(BaseModel):
    status: Literal["ok", "loading"]


class Error(BaseModel):
    """Every error: one line naming the file or object and the reason."""

    error: str
