"""``/api/v1/live``: camera frames over a WebSocket, faces and names back.

The conversation: the client sends one JSON text message of settings
(``{"key": KEY, "matcher": "knn", "threshold": null, "top_k": 3}``, all optional; ``key`` only
where keys are needed, since browsers cannot set headers on a WebSocket), the server answers
``{"ready": true}``; then each binary message is one encoded frame (JPEG, PNG, WebP) and gets one
JSON answer ``{"frame": n, "width", "height", "faces": [...], "ms"}`` (faces as in
``query --json``) or ``{"frame": n, "error": "..."}``. A client sends its next frame only after the
answer to the last one, so a busy server makes the page drop frames rather than queue them.
"""
from __future__ import annotations

import json
import time

from fastapi import APIRouter, HTTPException, WebSocket, WebSocketDisconnect
from starlette.concurrency import run_in_threadpool

from facesearch.errors import FaceSearchError, one_line
from facesearch.gallery import QueryResult
from facesearch.server.state import ServerState, socket_state
from facesearch.server.uploads import UploadRejected

router = APIRouter(prefix="/api/v1", tags=["live"])

#: WebSocket close code for a refused key (policy violation).
POLICY_VIOLATION = 1008


def _options(message: dict) -> dict:
    matcher = message.get("matcher", "knn")
    if matcher not in ("knn", "centroid"):
        raise ValueError(f"matcher must be knn or centroid, not {matcher!r}")
    threshold = message.get("threshold")
    top_k = int(message.get("top_k", 3))
    if not 1 <= top_k <= 50:
        raise ValueError("top_k must be between 1 and 50")
    return {"matcher": matcher, "threshold": None if threshold is None else float(threshold), "top_k": top_k}


@router.websocket("/live")
async def live(websocket: WebSocket) -> None:
    state: ServerState = socket_state(websocket)
    await websocket.accept()
    try:
        try:
            settings = json.loads(await websocket.receive_text())
            if not isinstance(settings, dict):
                raise ValueError("the first message must be a JSON object of settings")
            await run_in_threadpool(state.keys.check, settings.get("key") or None, "read")
            options = _options(settings)
        except HTTPException as exc:
            await websocket.send_json({"error": exc.detail})
            await websocket.close(POLICY_VIOLATION)
            return
        except (ValueError, TypeError) as exc:
            await websocket.send_json({"error": one_line(exc)})
            await websocket.close(POLICY_VIOLATION)
            return
        await websocket.send_json({"ready": True})
        frame = 0
        while True:
            data = await websocket.receive_bytes()
            frame += 1
            await websocket.send_json(await _answer(state, frame, data, options))
    except WebSocketDisconnect:
        return


async def _answer(state: ServerState, frame: int, data: bytes, options: dict) -> dict:
    start = time.perf_counter()
    name = f"frame {frame}"
    try:
        if len(data) > state.limits.max_upload_bytes:
            raise UploadRejected(413, f"{name}: larger than the upload limit")
        image = await state.decode(name, data)
        await state.read(state.gallery.ensure_enrolled)
        faces = await state.batcher.faces(image)
        matches = await state.read(state.gallery.match_faces, faces, **options)
    except FaceSearchError as exc:
        return {"frame": frame, "error": one_line(exc)}
    height, width = image.shape[:2]
    return {"frame": frame, "width": width, "height": height, "faces": QueryResult(None, matches).as_dict()["faces"],
            "ms": round(1000 * (time.perf_counter() - start), 1)}
