"""``facesearch bench people``: a photo library of known people scanned into an empty gallery,
end to end through :meth:`Gallery.scan` and the people commands (5celeb by default).

Each photo's person is its folder's name (``<root>/<split>/<person>/<photo>``); no label is
given to the gallery. Measured, in one run: the first scan and a re-scan of the same photos
(time, and the re-scan's share of the first); the candidate people (size, purity: the share
of their faces that are their majority person, and recall: the share of each person's faces in
their largest candidate); then each person's largest candidate named after its majority, and
``query`` on the ``--probe`` split's photos; again after naming the candidates the gallery then
suggests (most of their faces match a named person; no label used), and once every candidate is
named after its majority; against the enroll path (the other splits enrolled
from their folders, the same photos queried).
"""
from __future__ import annotations

import os
import tempfile
import time
from collections import Counter
from pathlib import Path

from facesearch.imaging.photo_files import iter_image_files


def _person(path: str | os.PathLike) -> str:
    return Path(path).parent.name


def _accuracy(gallery, photos: list[Path]) -> tuple[int, int]:
    right = 0
    for photo in photos:
        faces = gallery.query(photo).faces
        right += bool(faces) and faces[0].match.identity == _person(photo)
    return right, len(photos)


def run(root: str | os.PathLike, *, probe: str = "val", use_cache: bool = False) -> dict:
    """The figures described in the module docstring, as a dict (what ``--json`` prints)."""
    from facesearch.gallery import Gallery
    from facesearch.models.analysis import FaceAnalysis

    root = Path(root)
    splits = sorted(p for p in root.iterdir() if p.is_dir())
    probes = [p for p in iter_image_files(root / probe)]
    analysis = FaceAnalysis()
    cache = None if use_cache else False
    with tempfile.TemporaryDirectory(prefix="facesearch-bench-people-") as tmp:
        with Gallery(Path(tmp) / "scanned", analysis=analysis, cache=cache) as g:
            analysis.get_batch([])  # models loaded before the clock starts
            start = time.perf_counter()
            first = g.scan(splits, recursive=True)
            t_scan = time.perf_counter() - start
            start = time.perf_counter()
            g.scan(splits, recursive=True)
            t_rescan = time.perf_counter() - start
            clusters = [(c["id"], [_person(f["path"]) for f in g.people.show(c["id"])["faces"]])
                        for c in g.people.list()["clusters"]]
            faces_of = Counter(_person(p) for p, n in first.scanned for _ in range(n))
            rows, named = [], {}
            for cluster, people in clusters:
                who, count = Counter(people).most_common(1)[0]
                rows.append({"id": cluster, "faces": len(people), "person": who, "purity": round(count / len(people), 4)})
                if who not in named:
                    named[who] = cluster
            recall = {who: round(max(r["faces"] * r["purity"] for r in rows if r["person"] == who) / faces_of[who], 4)
                      for who in named}
            for who, cluster in named.items():
                g.people.name(cluster, who)
            scanned_right, total = _accuracy(g, probes)
            # Then the candidates the gallery suggests merging (most faces match a named person),
            # named so without looking at any label.
            suggested = [(c["id"], c["suggestion"]["name"]) for c in g.people.list()["clusters"] if c["suggestion"]]
            for cluster, who in suggested:
                g.people.name(cluster, who)
            suggested_right, _ = _accuracy(g, probes)
            suggested_wrong = sum(who != r["person"] for cluster, who in suggested for r in rows if r["id"] == cluster)
            # Then every other candidate named too, as a user who recognises the smaller ones
            # would (merged into the person of that name).
            left = {c["id"] for c in g.people.list()["clusters"]}
            for row in rows:
                if row["id"] in left:
                    g.people.name(row["id"], row["person"])
            all_right, _ = _accuracy(g, probes)
            waiting = g.people.list()["waiting"]
        with Gallery(Path(tmp) / "enrolled", analysis=analysis, cache=cache) as e:
            e.enroll([s for s in splits if s.name != probe])
            enrolled_right, _ = _accuracy(e, probes)
    return {"root": str(root), "photos": len(first.scanned) + len(first.errors), "faces": sum(faces_of.values()),
            "errors": len(first.errors), "scan_s": round(t_scan, 2), "rescan_s": round(t_rescan, 3),
            "rescan_share": round(t_rescan / t_scan, 4), "clusters": rows, "waiting": waiting, "recall": recall,
            "probe": probe, "probes": total, "people_accuracy": round(scanned_right / max(total, 1), 4),
            "suggested": len(suggested), "suggested_wrong": suggested_wrong,
            "suggested_accuracy": round(suggested_right / max(total, 1), 4),
            "all_named_accuracy": round(all_right / max(total, 1), 4),
            "enroll_accuracy": round(enrolled_right / max(total, 1), 4)}
