"""``/api/v1/identities``, ``/api/v1/faces`` and ``/api/v1/info``: what the gallery holds, and changes to it.

Changes run on the server's one writer thread, in arrival order; reads go on meanwhile.
"""
from __future__ import annotations

from fastapi import APIRouter, Depends, File, Path, Query, Response, UploadFile

from facesearch import __version__
from facesearch.server import schemas
from facesearch.server.keys import read_access, write_access
from facesearch.server.state import ServerState, server_state
from facesearch.server.uploads import read_photos

router = APIRouter(prefix="/api/v1", tags=["gallery"])

ERRORS = {status: {"model": schemas.Error} for status in (401, 403, 404, 409, 413, 415, 422)}
NAME = Path(..., min_length=1, max_length=256, description="an identity's name")


@router.get("/info", response_model=schemas.Info, responses=ERRORS, dependencies=[Depends(read_access)])
async def info(state: ServerState = Depends(server_state)) -> dict:
    """The server and its gallery: version, model, counts, limits, whether keys are needed."""
    gallery = state.gallery

    def read() -> dict:
        held = gallery.info()
        return {key: held[key] for key in ("identities", "faces", "generation", "threshold", "calibration")} | \
            {"keys_required": state.keys.keys_required()}

    return {"version": __version__, "model": gallery.model_id, "ready": state.ready, **(await state.read(read)),
            "limits": state.limits.as_dict(), "batching": state.batcher.stats()}


@router.get("/identities", response_model=list[schemas.Identity], responses=ERRORS,
            dependencies=[Depends(read_access)])
async def list_identities(state: ServerState = Depends(server_state)) -> list[dict]:
    """Every enrolled identity with its face and photo counts: what ``facesearch list --json`` prints."""
    return await state.read(state.gallery.identities)


@router.post("/identities/{name}/photos", response_model=schemas.EnrollReport, responses=ERRORS,
             dependencies=[Depends(write_access)])
async def enroll(name: str = NAME, photo: list[UploadFile] = File(..., description="photos of this person"),
                 min_face_size: int = Query(20, ge=12, le=1000, description="smallest face looked for, pixels"),
                 state: ServerState = Depends(server_state)) -> dict:
    """Enroll photos as the person ``name`` (created if new): what ``facesearch enroll --json``
    prints. If any photo cannot be used, the request fails naming it and nothing is stored."""
    photos = await read_photos(photo, state.limits)

    def write() -> dict:
        analysis = state.enrollment_analysis(min_face_size)
        return state.gallery.enroll_uploads(photos, name, max_pixels=state.limits.max_pixels,
                                            analysis=analysis).as_dict()

    return await state.write(write)


@router.patch("/identities/{name}", response_model=schemas.Renamed, responses=ERRORS,
              dependencies=[Depends(write_access)])
async def rename(body: schemas.RenameRequest, name: str = NAME, state: ServerState = Depends(server_state)) -> dict:
    """Rename an identity; merges into the new name if it exists."""
    await state.write(state.gallery.rename, name, body.name)
    return {"renamed": name, "to": body.name}


@router.delete("/identities/{name}", response_model=schemas.Removed, responses=ERRORS,
               dependencies=[Depends(write_access)])
async def remove(name: str = NAME, state: ServerState = Depends(server_state)) -> dict:
    """Remove an identity and all its faces."""
    faces = await state.write(state.gallery.remove, name)
    return {"removed": name, "faces": faces}


@router.get("/identities/{name}/faces", response_model=list[schemas.StoredFace], responses=ERRORS,
            dependencies=[Depends(read_access)])
async def identity_faces(name: str = NAME, state: ServerState = Depends(server_state)) -> list[dict]:
    """The stored faces of one identity, oldest first."""
    return await state.read(state.gallery.faces, name)


@router.get("/identities/{name}/thumbnail", response_class=Response, responses=ERRORS,
            dependencies=[Depends(read_access)])
async def identity_thumbnail(name: str = NAME, size: int = Query(112, ge=16, le=512),
                             state: ServerState = Depends(server_state)) -> Response:
    """A JPEG of the identity's first enrolled face."""
    def read() -> bytes:
        first = state.gallery.faces(name)[0]
        return state.gallery.face_thumbnail(first["id"], size)

    return _jpeg(await state.read(read))


@router.get("/faces/{face_id}/thumbnail", response_class=Response, responses=ERRORS,
            dependencies=[Depends(read_access)])
async def face_thumbnail(face_id: int, size: int = Query(112, ge=16, le=512),
                         state: ServerState = Depends(server_state)) -> Response:
    """A JPEG of one stored face, cut from its photo."""
    return _jpeg(await state.read(state.gallery.face_thumbnail, face_id, size))


@router.delete("/faces/{face_id}", response_model=schemas.RemovedFace, responses=ERRORS,
               dependencies=[Depends(write_access)])
async def remove_face(face_id: int, state: ServerState = Depends(server_state)) -> dict:
    """Remove one face; an identity left without faces goes too."""
    return await state.write(state.gallery.remove_face, face_id)


def _jpeg(data: bytes) -> Response:
    # Thumbnails change only when faces do, and their URLs carry the gallery generation.
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=60"})
