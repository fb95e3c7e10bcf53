"""``/api/v1/identify`` and ``/api/v1/verify``: uploaded photos in, faces and names out."""
from __future__ import annotations

import asyncio
from typing import Literal, Optional

from fastapi import APIRouter, Depends, File, Query, UploadFile

from facesearch.gallery import QueryResult
from facesearch.search.verification import verify_faces
from facesearch.server import schemas
from facesearch.server.keys import read_access
from facesearch.server.state import ServerState, server_state
from facesearch.server.uploads import read_photo, read_photos

router = APIRouter(prefix="/api/v1", tags=["photos"])

ERRORS = {status: {"model": schemas.Error} for status in (401, 403, 409, 413, 415, 422)}


@router.post("/identify", response_model=schemas.IdentifyResponse, responses=ERRORS,
             dependencies=[Depends(read_access)])
async def identify(photo: list[UploadFile] = File(..., description="one or more photos"),
                   matcher: Literal["knn", "centroid"] = "knn",
                   top_k: int = Query(5, ge=1, le=50, description="candidates per face"),
                   k: int = Query(5, ge=1, le=100, description="neighbours that vote (knn)"),
                   threshold: Optional[float] = Query(None, ge=-1.0, le=1.0,
                                                      description="cosine similarity under which a face is unknown"),
                   state: ServerState = Depends(server_state)) -> dict:
    """Every face in each uploaded photo and who it is, largest face first: what
    ``facesearch query --json`` prints. A photo that cannot be used fails the whole request."""
    photos = await read_photos(photo, state.limits)
    images = [await state.decode(name, data) for name, data in photos]
    await state.read(state.gallery.ensure_enrolled)
    found = await asyncio.gather(*(state.batcher.faces(image) for image in images))
    results = []
    for (name, _), faces in zip(photos, found):
        matches = await state.read(state.gallery.match_faces, faces, matcher=matcher, threshold=threshold,
                                   top_k=top_k, k=k)
        results.append(QueryResult(name, matches).as_dict())
    return {"results": results}


@router.post("/verify", response_model=schemas.VerifyResponse, responses=ERRORS,
             dependencies=[Depends(read_access)])
async def verify(first: UploadFile = File(...), second: UploadFile = File(...),
                 threshold: Optional[float] = Query(None, ge=-1.0, le=1.0,
                                                    description="cosine similarity from which it is the same person"),
                 state: ServerState = Depends(server_state)) -> dict:
    """Whether the largest faces of two photos are the same person, with their similarity."""
    photos = [await read_photo(first, state.limits, 0), await read_photo(second, state.limits, 1)]
    images = [await state.decode(name, data) for name, data in photos]
    faces_a, faces_b = await asyncio.gather(*(state.batcher.faces(image) for image in images))
    return verify_faces(faces_a, faces_b, images=(photos[0][0], photos[1][0]), threshold=threshold).as_dict()
