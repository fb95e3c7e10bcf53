"""``/api/v1/people``: candidate people found by ``facesearch scan`` and the user's feedback on
them (:class:`facesearch.gallery.people.People`), with the shapes ``facesearch people ... --json``
prints. Changes run on the server's writer thread like every write.

``POST /api/v1/people/scan`` scans uploaded photos (kept under the gallery's ``uploads/``);
``facesearch --server URL scan FOLDER`` sends a folder's photos in several such requests with
``cluster=false`` and then calls ``POST /api/v1/people/cluster`` once, as one local scan clusters.
"""
from __future__ import annotations

from fastapi import APIRouter, Depends, File, Path, Query, Response, UploadFile

from facesearch.server import schemas
from facesearch.server.api_gallery import ERRORS, NAME, _jpeg
from facesearch.server.keys import read_access, write_access
from facesearch.server.state import ServerState, server_state
from facesearch.server.uploads import read_photos

router = APIRouter(prefix="/api/v1/people", tags=["people"])

CLUSTER = Path(..., ge=1, description="a candidate person's id")
FACE = Path(..., ge=1, description="a scanned face's id")


@router.get("", response_model=schemas.PeopleList, responses=ERRORS, dependencies=[Depends(read_access)])
async def list_people(sample: int = Query(8, ge=1, le=32, description="faces listed per candidate person"),
                      state: ServerState = Depends(server_state)) -> dict:
    """The candidate people, largest first, and the people seen in the scanned photos."""
    return await state.read(state.gallery.people.list, sample)


@router.post("/scan", response_model=schemas.ScanReport, responses=ERRORS, dependencies=[Depends(write_access)])
async def scan(photo: list[UploadFile] = File(..., description="photos of a library to scan"),
               min_face_size: int = Query(20, ge=12, le=1000, description="smallest face looked for, pixels"),
               cluster: bool = Query(True, description="group the new unknown faces into candidate people now; "
                                     "false leaves them waiting for POST /api/v1/people/cluster (a library sent "
                                     "in several requests is clustered once, as one scan would be)"),
               state: ServerState = Depends(server_state)) -> dict:
    """Scan photos: every face kept, enrolled people identified, the unknown ones grouped into
    candidate people. If any photo cannot be used, the request fails naming it and nothing is stored."""
    photos = await read_photos(photo, state.limits)

    def write() -> dict:
        return state.gallery.scan_uploads(photos, max_pixels=state.limits.max_pixels,
                                          analysis=state.enrollment_analysis(min_face_size), cluster=cluster).as_dict()

    return await state.write(write)


@router.get("/clusters/{cluster}", response_model=schemas.CandidateFaces, responses=ERRORS,
            dependencies=[Depends(read_access)])
async def show(cluster: int = CLUSTER, state: ServerState = Depends(server_state)) -> dict:
    """One candidate person's faces, with their photos and boxes."""
    return await state.read(state.gallery.people.show, cluster)


@router.post("/clusters/{cluster}/name", response_model=schemas.Named, responses=ERRORS,
             dependencies=[Depends(write_access)])
async def name(body: schemas.NameRequest, cluster: int = CLUSTER, state: ServerState = Depends(server_state)) -> dict:
    """Enroll the candidate person as ``name`` (merged into that person if enrolled)."""
    return await state.write(state.gallery.people.name, cluster, body.name)


@router.post("/clusters/{cluster}/split", response_model=schemas.Split, responses=ERRORS,
             dependencies=[Depends(write_access)])
async def split(body: schemas.SplitRequest, cluster: int = CLUSTER, state: ServerState = Depends(server_state)) -> dict:
    """Move faces out of the candidate person into a new one; they stay apart from the rest."""
    return await state.write(state.gallery.people.split, cluster, body.faces)


@router.post("/faces/{face}/not", response_model=schemas.Rejected, responses=ERRORS,
             dependencies=[Depends(write_access)])
async def reject(body: schemas.NameRequest, face: int = FACE, state: ServerState = Depends(server_state)) -> dict:
    """The scanned face is not ``name``: taken back from them if given, and never given again."""
    return await state.write(state.gallery.people.reject, face, body.name)


@router.get("/faces/{face}/thumbnail", response_class=Response, responses=ERRORS,
            dependencies=[Depends(read_access)])
async def thumbnail(face: int = FACE, size: int = Query(112, ge=16, le=512),
                    state: ServerState = Depends(server_state)) -> Response:
    """A JPEG of one scanned face, cut from its photo."""
    return _jpeg(await state.read(state.gallery.people.face_thumbnail, face, size))


@router.get("/named/{name}/photos", response_model=schemas.PersonPhotos, responses=ERRORS,
            dependencies=[Depends(read_access)])
async def photos(name: str = NAME, state: ServerState = Depends(server_state)) -> dict:
    """Every scanned photo in which the person appears, with the box."""
    return await state.read(state.gallery.people.photos, name)


@router.post("/undo", response_model=schemas.Undone, responses=ERRORS, dependencies=[Depends(write_access)])
async def undo(state: ServerState = Depends(server_state)) -> dict:
    """Undo the newest name, not or split not yet undone."""
    return await state.write(state.gallery.people.undo)


@router.get("/history", response_model=list[schemas.PeopleActionRecord], responses=ERRORS,
            dependencies=[Depends(read_access)])
async def history(state: ServerState = Depends(server_state)) -> list[dict]:
    """The actions taken on candidate people, newest first."""
    return await state.read(state.gallery.people.history)


@router.post("/cluster", response_model=schemas.Reclustered, responses=ERRORS, dependencies=[Depends(write_access)])
async def cluster(state: ServerState = Depends(server_state)) -> dict:
    """Group the unknown faces stored since the last clustering into candidate people, as the end
    of a scan does (after scans sent with ``cluster=false``)."""
    return await state.write(state.gallery.people.update_clusters, only_new=True)


@router.post("/recluster", response_model=schemas.Reclustered, responses=ERRORS, dependencies=[Depends(write_access)])
async def recluster(state: ServerState = Depends(server_state)) -> dict:
    """Cluster every unknown face again from scratch."""
    return await state.write(state.gallery.people.recluster)
