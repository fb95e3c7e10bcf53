"""Follow faces from one analysed frame to the next, and settle who each one is.

Pure logic, no I/O and no models: :mod:`facesearch.video.analyser` feeds it boxes and matches.

* **Parts of a face are not faces.** MTCNN now and then finds a small "face" in the hair or
  an ear of a larger one, persistently enough to make a track of it; :func:`drop_nested`
  removes such detections before association.
* **Association.** The boxes of an analysed frame are paired with the live tracks by
  intersection-over-union, solved as an assignment problem (Hungarian method,
  :func:`scipy.optimize.linear_sum_assignment`) so two faces close together are not both
  given to the same track. Pairs under ``iou_threshold`` are not associated.
* **Birth and death.** A box no track takes starts a new track; a track that finds no box in
  ``max_missed`` analysed frames in a row is removed.
* **When to embed.** Embedding is the expensive part, so a track is embedded when it
  appears, and after that only every ``every`` analysed frames or when it is unsure: its
  identity is not settled yet, its smoothed similarity is within ``margin`` of the threshold,
  it was just found again after missing, or its box changed a lot since the last embedding.
* **Smoothing.** A track's identity is a similarity-weighted vote over its last ``window``
  matches (see :func:`vote`), with hysteresis: a different identity only takes over once it
  was the per-frame answer at least ``min_agree`` times in the window, so one bad frame
  never flips the name.

Boxes are ``(x, y, w, h)`` floats in pixels throughout.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

from facesearch.boxes import Box, iou, iou_matrix


def associate(track_boxes: Sequence[Box], boxes: Sequence[Box],
              iou_threshold: float = 0.3) -> tuple[list[tuple[int, int]], list[int], list[int]]:
    """Pair tracks with boxes by maximum total IoU.

    Returns:
        ``(pairs, unmatched_tracks, unmatched_boxes)``: ``pairs`` holds ``(track_index,
        box_index)`` with IoU at or above ``iou_threshold``; the others are indices.
    """
    if not track_boxes or not boxes:
        return [], list(range(len(track_boxes))), list(range(len(boxes)))
    overlap = iou_matrix(track_boxes, boxes)
    rows, cols = linear_sum_assignment(overlap, maximize=True)
    pairs = [(int(r), int(c)) for r, c in zip(rows, cols) if overlap[r, c] >= iou_threshold]
    paired_t = {r for r, _ in pairs}
    paired_b = {c for _, c in pairs}
    return (pairs, [i for i in range(len(track_boxes)) if i not in paired_t],
            [j for j in range(len(boxes)) if j not in paired_b])


def drop_nested(boxes: Sequence[Box], grow: float = 0.5, max_ratio: float = 0.5) -> list[int]:
    """Indices of the boxes to keep: those that are not part of a larger face's head.

    A box is dropped when its centre lies inside a larger box grown by ``grow`` times that
    box's size on every side (its hair, ears, neck) and it is under ``max_ratio`` times that
    box's width. A real face there would be hidden behind that head; what MTCNN finds there
    is hair or an ear (seen at scores up to 0.98 on the fixture video).
    """
    keep = []
    for i, (x, y, w, h) in enumerate(boxes):
        cx, cy = x + w / 2, y + h / 2
        nested = any(
            w < max_ratio * bw
            and bx - grow * bw <= cx <= bx + bw + grow * bw
            and by - grow * bh <= cy <= by + bh + grow * bh
            for j, (bx, by, bw, bh) in enumerate(boxes) if j != i
        )
        if not nested:
            keep.append(i)
    return keep


def vote(history: Sequence[tuple[str | None, float]], threshold: float) -> tuple[str | None, float]:
    """Similarity-weighted vote over recent per-frame matches.

    Each match ``(identity, similarity)`` votes for its identity with its similarity; an
    unknown match (``identity is None``) votes for "unknown" with ``threshold``, i.e. as much
    as a match right at the threshold, so any real match outweighs it and several unknowns
    outweigh one marginal match.

    Returns:
        ``(winner, total_vote)``; ties go to the most recent of the tied identities.
    """
    totals: dict[str | None, float] = {}
    last_seen: dict[str | None, int] = {}
    for i, (identity, similarity) in enumerate(history):
        weight = threshold if identity is None else max(float(similarity), 0.0)
        totals[identity] = totals.get(identity, 0.0) + weight
        last_seen[identity] = i
    if not totals:
        return None, 0.0
    winner = max(totals, key=lambda n: (totals[n], last_seen[n]))
    return winner, totals[winner]


_UNREPORTED = object()  # a track's identity before any "identified" event (None means unknown)


@dataclass(eq=False)
class Track:
    """One face followed across analysed frames.

    Attributes:
        id: 1, 2, ... in order of appearance.
        box: last associated box.
        identity: smoothed identity (``None``: unknown, or not embedded yet).
        similarity: mean similarity of the matches behind ``identity`` (NaN before the first).
        settled: ``identity`` is backed by at least ``min_agree`` matches in the window.
        reported: the identity last announced as settled (see :meth:`Tracker.record`).
        missed: analysed frames in a row without a box.
        since_embed: analysed frames since the last embedding (``None``: never embedded).
        embeddings: how many times this track was embedded.
        first_frame / last_frame: frame numbers where it was first and last seen.
    """

    id: int
    box: Box
    first_frame: int
    last_frame: int
    history: deque = field(repr=False)
    identity: str | None = None
    similarity: float = float("nan")
    settled: bool = False
    reported: object = field(default=_UNREPORTED, repr=False)
    missed: int = 0
    reacquired: bool = False
    since_embed: int | None = None
    embed_box: Box | None = None
    embeddings: int = 0

    def count(self, identity: str | None) -> int:
        """How many matches in the window answered ``identity``."""
        return sum(1 for name, _ in self.history if name == identity)


@dataclass
class Step:
    """What one :meth:`Tracker.update` did.

    Attributes:
        tracks: the track of each input box, in the input order.
        born: tracks created by this frame.
        died: tracks removed by this frame (missed ``max_missed`` analysed frames in a row).
    """

    tracks: list[Track]
    born: list[Track]
    died: list[Track]


class Tracker:
    """IoU tracker with embedding scheduling and identity smoothing.

    Args:
        threshold: the matcher's cosine-similarity threshold (for voting and "unsure").
        iou_threshold: lowest IoU at which a box continues a track.
        max_missed: analysed frames in a row without a box after which a track is removed.
        every: re-embed a settled, steady track every this many analysed frames.
        window: matches kept per track for the vote.
        min_agree: matches an identity needs in the window to settle or take over.
        margin: a track whose smoothed similarity is within this of ``threshold`` is unsure
            and is embedded on every analysed frame.
        min_box_iou: a track whose box has IoU below this with its box at the last embedding
            (moved or changed scale a lot) is re-embedded.
        smoothing: ``False`` uses each frame's match as is (``window=1``, ``min_agree=1``)
            and embeds every face on every analysed frame; association still runs so tracks
            and their events stay meaningful.
    """

    def __init__(self, threshold: float, *, iou_threshold: float = 0.3, max_missed: int = 5, every: int = 10,
                 window: int = 5, min_agree: int = 2, margin: float = 0.05, min_box_iou: float = 0.5,
                 smoothing: bool = True) -> None:
        if every < 1 or max_missed < 1 or window < 1:
            raise ValueError("every, max_missed and window must be at least 1")
        self.threshold = float(threshold)
        self.iou_threshold = iou_threshold
        self.max_missed = max_missed
        self.every = every
        self.smoothing = smoothing
        self.window = window if smoothing else 1
        self.min_agree = min(min_agree, self.window) if smoothing else 1
        self.margin = margin
        self.min_box_iou = min_box_iou
        self.tracks: list[Track] = []
        self.created = 0

    def update(self, boxes: Sequence[Box], frame: int) -> Step:
        """Associate one analysed frame's face boxes with the tracks."""
        boxes = [tuple(float(v) for v in b) for b in boxes]
        pairs, lost, new = associate([t.box for t in self.tracks], boxes, self.iou_threshold)
        owner: dict[int, Track] = {}
        for ti, bi in pairs:
            track = self.tracks[ti]
            track.reacquired = track.missed > 0
            track.box, track.missed, track.last_frame = boxes[bi], 0, frame
            owner[bi] = track
        died = []
        for ti in lost:
            track = self.tracks[ti]
            track.missed += 1
            if track.missed >= self.max_missed:
                died.append(track)
        born = []
        for bi in new:
            self.created += 1
            track = Track(id=self.created, box=boxes[bi], first_frame=frame, last_frame=frame,
                          history=deque(maxlen=self.window))
            owner[bi] = track
            born.append(track)
        for track in self.tracks:
            if track.since_embed is not None and track.missed == 0:
                track.since_embed += 1
        self.tracks = [t for t in self.tracks if all(t is not d for d in died)] + born
        return Step([owner[i] for i in range(len(boxes))], born, died)

    def needs_embedding(self, track: Track) -> bool:
        """Whether ``track`` (seen in the frame just updated) should be embedded now."""
        if not self.smoothing or track.since_embed is None or not track.settled or track.reacquired:
            return True
        if track.since_embed >= self.every:
            return True
        if not np.isnan(track.similarity) and abs(track.similarity - self.threshold) < self.margin:
            return True
        return track.embed_box is not None and iou(track.box, track.embed_box) < self.min_box_iou

    def record(self, track: Track, identity: str | None, similarity: float) -> bool:
        """Add one per-frame match to ``track`` and re-vote its identity.

        Returns:
            ``True`` when the track's identity has just settled, or a settled identity has
            just changed: the moments worth an ``identified`` event.
        """
        track.history.append((identity, float(similarity)))
        track.since_embed, track.embed_box, track.reacquired = 0, track.box, False
        track.embeddings += 1
        winner, _ = vote(track.history, self.threshold)
        if track.embeddings == 1 or (winner != track.identity and track.count(winner) >= self.min_agree) \
                or track.count(track.identity) == 0:
            # The first match names the track at once (for display); later, hysteresis.
            track.identity = winner
        sims = [s for name, s in track.history if name == track.identity]
        track.similarity = float(np.mean(sims)) if sims else float(similarity)
        track.settled = track.count(track.identity) >= self.min_agree
        if track.settled and track.identity != track.reported:
            track.reported = track.identity
            return True
        return False

    def finish(self) -> list[Track]:
        """Remove and return every remaining track (the source ended)."""
        gone, self.tracks = self.tracks, []
        return gone
