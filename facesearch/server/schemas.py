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


# -- people found by scanning (facesearch.gallery.people) ----------------------------------------

class Suggestion(BaseModel):
    name: str = Field(description="the enrolled person at least half of the candidate's faces match")
    faces: int = Field(description="how many of its faces match them")


class CandidatePerson(BaseModel):
    id: int = Field(description="the candidate person's id, for name / split")
    faces: int
    photos: int
    sample: list[int] = Field(description="scanned face ids, sharpest first (thumbnails at /api/v1/people/faces/ID/thumbnail)")
    suggestion: Optional[Suggestion] = Field(default=None, description="most likely a part of this enrolled person")


class ScannedPerson(BaseModel):
    name: str
    faces: int
    photos: int


class PeopleList(BaseModel):
    """What ``facesearch people list --json`` prints."""

    clusters: list[CandidatePerson] = Field(description="largest first")
    waiting: int = Field(description="unknown faces in no candidate person yet")
    people: list[ScannedPerson] = Field(description="enrolled people seen in the scanned photos")
    photos: int
    faces: int


class CandidateFace(BaseModel):
    face: int
    path: str
    box: list[int]
    quality: float


class CandidateFaces(BaseModel):
    id: int
    faces: list[CandidateFace]


class NameRequest(BaseModel):
    name: str = Field(min_length=1, max_length=256, description="the person's name; merges into them if enrolled")


class Named(BaseModel):
    action: int
    cluster: int
    name: str
    created: bool
    named: int
    left_out: list[int]
    identified: list[int] = Field(description="waiting unknown faces now identified as this person")


class SplitRequest(BaseModel):
    faces: list[int] = Field(min_length=1, description="the scanned faces to move into a new candidate person")


class Split(BaseModel):
    action: int
    cluster: int
    new_cluster: int
    faces: list[int]


class Rejected(BaseModel):
    action: int
    face: int
    name: str
    was: str = Field(description="the face's state before: unknown, identified or named")


class PersonPhotoFace(BaseModel):
    face: int
    box: list[int]
    state: str
    similarity: Optional[float] = None


class PersonPhoto(BaseModel):
    path: str
    faces: list[PersonPhotoFace]


class PersonPhotos(BaseModel):
    name: str
    photos: list[PersonPhoto]


class Undone(BaseModel):
    undone: int
    kind: str
    summary: str


class PeopleActionRecord(BaseModel):
    id: int
    kind: str
    summary: str = ""
    at: str
    undone: bool


class Reclustered(BaseModel):
    attached: int
    new_clusters: int
    clusters: int
    waiting: int


class ScannedPhotoRecord(BaseModel):
    path: str
    faces: int


class IdentifiedFace(BaseModel):
    path: str
    identity: str
    similarity: float


class ScanReport(BaseModel):
    """What ``facesearch scan --json`` prints (paths are the uploaded files' names)."""

    scanned: list[ScannedPhotoRecord]
    already_scanned: list[str]
    no_face: list[str]
    identified: list[IdentifiedFace]
    unknown: int
    errors: list[PhotoError]
    clusters: Reclustered
