"""Clustering unknown faces into people: the hard rules on real embeddings, attaching new faces,
the benchmark's scores on hand-made label sets, and ``bench cluster`` through the CLI."""
from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from conftest import CELEB, DATA
from facesearch.bench.cluster_quality import (bcubed_scores, chinese_whispers, immich_rule, merged_singletons,
                                              pairwise_scores, same_photo_pairs)
from facesearch.search.face_clusters import (DEFAULT_PAIR_THRESHOLD, DEFAULT_THRESHOLD, REFERENCE_FACES, attach_faces,
                                             cluster_faces, thresholds_for)

LFW = DATA / "lfw" / "lfw-deepfunneled.tgz"


@pytest.fixture(scope="module")
def celeb_faces(analysis):
    """Every face of 5celeb train and val: (vectors, photo ids, person of each photo's largest face or '')."""
    from facesearch.bench.embeddings import pick_face
    from facesearch.models.face_cache import FaceCache
    from facesearch.models.photo_faces import PhotoFaces, analyse_files

    paths = sorted(p for p in CELEB.glob("*/*/*") if p.is_file())
    vectors, photos, people = [], [], []
    for pid, res in enumerate(analyse_files(paths, analysis, FaceCache.for_settings(analysis.settings))):
        assert isinstance(res, PhotoFaces), res
        main = pick_face(res.faces, res.width, res.height)
        for face in res.faces:
            vectors.append(face.embedding)
            photos.append(pid)
            people.append(res.path.parent.name if face is main else "")
    return np.array(vectors, np.float32), np.array(photos, np.int64), np.array(people)


def _no_shared_label(labels: np.ndarray, pairs) -> bool:
    return all(labels[a] < 0 or labels[a] != labels[b] for a, b in pairs)


def test_five_people_come_out_as_clean_clusters(celeb_faces):
    vectors, photos, people = celeb_faces
    labels = cluster_faces(vectors, photos)
    assert labels.dtype == np.int64 and labels.shape == (len(vectors),)
    named = people != ""
    for k in range(labels.max() + 1):
        members = Counter(people[(labels == k) & named])
        assert len(members) <= 1, f"cluster {k} mixes people: {members}"
    biggest = Counter(people[(labels >= 0) & named]).most_common()
    assert len(biggest) == 5, biggest
    # Labels are numbered largest first.
    sizes = np.bincount(labels[labels >= 0])
    assert (np.diff(sizes) <= 0).all() and sizes.min() >= 2
    # A library this small gets thresholds loose enough for one large cluster per person: the five
    # largest are the five people, each holding at least a third of that person's photos
    # (madonna's 24 span four decades: 9 of them with flip embeddings, 12 without; on LFW flip
    # clusters better, docs/benchmarks.md "Flip by default").
    top = [Counter(people[(labels == k) & named]).most_common(1)[0] for k in range(5)]
    assert len({name for name, _ in top}) == 5, (top, sizes[:8])
    assert all(n >= (people == name).sum() / 3 for name, n in top), (top, sizes[:8])


def test_thresholds_follow_the_library_size():
    assert thresholds_for(REFERENCE_FACES) == pytest.approx((DEFAULT_THRESHOLD, DEFAULT_PAIR_THRESHOLD))
    sizes = [10, 100, 1_000, REFERENCE_FACES, 100_000, 10_000_000]
    pairs = [thresholds_for(n)[1] for n in sizes]
    assert all(a >= b for a, b in zip(pairs, pairs[1:])) and pairs[0] > 0.5 and pairs[-1] >= 0.2
    assert all(t - p == pytest.approx(DEFAULT_THRESHOLD - DEFAULT_PAIR_THRESHOLD) for t, p in map(thresholds_for, sizes))


def test_waiting_faces_of_a_large_library_are_clustered_as_strictly_as_the_library(celeb_faces):
    vectors, photos, _ = celeb_faces
    loose = cluster_faces(vectors, photos)
    strict = cluster_faces(vectors, photos, library_size=1_000_000)
    assert (strict >= 0).sum() < (loose >= 0).sum()
    threshold, pair_threshold = thresholds_for(1_000_000)
    assert np.array_equal(strict, cluster_faces(vectors, photos, threshold=threshold, pair_threshold=pair_threshold))


def test_faces_of_one_photo_never_share_a_label_even_when_everything_would_merge(celeb_faces):
    vectors, _, _ = celeb_faces
    # Pretend photos of three faces each (consecutive rows: often the same person), and cut so
    # high that without the constraint everything would be one cluster.
    photos = np.arange(len(vectors)) // 3
    labels = cluster_faces(vectors, photos, threshold=2.0, pair_threshold=2.0)
    pairs = [(a, b) for a in range(len(vectors)) for b in range(a + 1, len(vectors)) if photos[a] == photos[b]]
    assert _no_shared_label(labels, pairs)
    assert (labels >= 0).sum() > len(vectors) // 2  # the constraint splits; it does not dissolve everything


def test_a_cannot_link_pair_is_split_and_the_rest_stays(celeb_faces):
    vectors, photos, _ = celeb_faces
    before = cluster_faces(vectors, photos)
    members = np.flatnonzero(before == 0)
    a, b = int(members[0]), int(members[1])
    after = cluster_faces(vectors, photos, cannot_link=[(a, b)])
    assert after[a] < 0 or after[a] != after[b]
    # Only cluster 0 may change: every other cluster keeps its members together.
    for k in range(1, before.max() + 1):
        assert len(set(after[before == k].tolist())) == 1


def test_cannot_link_rows_are_checked(celeb_faces):
    vectors, photos, _ = celeb_faces
    with pytest.raises(ValueError, match="cannot_link"):
        cluster_faces(vectors, photos, cannot_link=[(0, len(vectors))])
    with pytest.raises(ValueError, match="photo ids"):
        cluster_faces(vectors, photos[:-1])


def test_tiny_inputs(celeb_faces):
    vectors, _, _ = celeb_faces
    assert cluster_faces(vectors[:0], np.zeros(0, np.int64)).shape == (0,)
    assert cluster_faces(vectors[:1], np.zeros(1, np.int64)).tolist() == [-1]
    # The same face twice in two photos is one cluster, in one photo none.
    twice = np.stack([vectors[0], vectors[0]])
    assert cluster_faces(twice, np.array([1, 2])).tolist() == [0, 0]
    assert cluster_faces(twice, np.array([1, 1])).tolist() == [-1, -1]


def test_new_faces_attach_to_their_person(celeb_faces):
    vectors, photos, people = celeb_faces
    train = np.array(["/train/" in str(p) for p in _photo_paths()])[photos]
    labels = cluster_faces(vectors[train], photos[train])
    new = attach_faces(vectors[~train], photos[~train], vectors[train], labels, photos[train])
    assert new.shape == ((~train).sum(),) and new.dtype == np.int64
    majority = {k: Counter(people[train][labels == k]).most_common(1)[0][0] for k in range(labels.max() + 1)}
    named = people[~train] != ""
    attached = named & (new >= 0)
    assert attached.sum() >= named.sum() // 2
    wrong = [(people[~train][i], majority[new[i]]) for i in np.flatnonzero(attached)
             if majority[new[i]] not in ("", people[~train][i])]
    assert not wrong


def test_attach_respects_photos_and_cannot_link(celeb_faces):
    vectors, photos, _ = celeb_faces
    labels = cluster_faces(vectors, photos)
    face = int(np.flatnonzero(labels == 0)[0])
    other = int(np.flatnonzero(labels == 0)[1])
    new = vectors[[face, face]]
    # A copy of a clustered face, from a fresh photo, joins its cluster.
    assert attach_faces(new[:1], np.array([10_000]), vectors, labels, photos).tolist() == [0]
    # ... but not from a photo that already has a face in that cluster.
    assert attach_faces(new[:1], np.array([photos[other]]), vectors, labels, photos).tolist() == [-1]
    # Two new faces of one photo never join the same cluster.
    both = attach_faces(new, np.array([10_000, 10_000]), vectors, labels, photos)
    assert sorted(both.tolist()) == [-1, 0]
    # cannot_link: new rows first (0..M-1), then the existing rows (M..M+N-1).
    barred = attach_faces(new[:1], np.array([10_000]), vectors, labels, photos, cannot_link=[(0, 1 + other)])
    assert barred.tolist() == [-1]
    # Nothing clustered yet: nothing to attach to.
    assert attach_faces(new, np.array([1, 2]), vectors, np.full(len(vectors), -1), photos).tolist() == [-1, -1]


def _photo_paths():
    return sorted(p for p in CELEB.glob("*/*/*") if p.is_file())


def test_pairwise_and_bcubed_scores_by_hand():
    truth = np.array([0, 0, 0, 1, 1, 2])
    labels = np.array([5, 5, 7, 7, -1, -1])
    # Pairs put together: (0,1) right, (2,3) wrong. Same-person pairs: 3 + 1 = 4.
    pw = pairwise_scores(truth, labels)
    assert pw["precision"] == pytest.approx(0.5) and pw["recall"] == pytest.approx(0.25)
    assert pw["f1"] == pytest.approx(2 * 0.5 * 0.25 / 0.75)
    # BCubed precision per face: 1, 1, 1/2, 1/2, 1, 1; recall: 2/3, 2/3, 1/3, 1/2, 1/2, 1.
    b3 = bcubed_scores(truth, labels)
    assert b3["precision"] == pytest.approx(5 / 6)
    assert b3["recall"] == pytest.approx((2 / 3 + 2 / 3 + 1 / 3 + 1 / 2 + 1 / 2 + 1) / 6)
    # Everything alone: precision 1 by definition, recall 0 pairwise.
    alone = pairwise_scores(truth, np.full(6, -1))
    assert alone["precision"] == 1.0 and alone["recall"] == 0.0
    # Perfect.
    assert pairwise_scores(truth, truth)["f1"] == 1.0 and bcubed_scores(truth, truth)["f1"] == 1.0


def test_merged_singletons_and_same_photo_pairs_by_hand():
    truth = np.array([0, 0, 1, 2, 3])
    seen_once = np.array([False, True, True, True])
    # Person 1 (seen once) is in a cluster with person 0; persons 2 and 3 are alone or in a one-face cluster.
    assert merged_singletons(truth, np.array([0, 0, 0, -1, 4]), seen_once) == 1
    photos = np.array([1, 1, 1, 2, 2])
    assert same_photo_pairs(np.array([0, 0, 0, 1, 2]), photos) == 3
    assert same_photo_pairs(np.array([0, 1, -1, 3, 3]), photos) == 1


def test_baselines_on_real_faces(celeb_faces):
    vectors, photos, people = celeb_faces
    for fn in (immich_rule, chinese_whispers):
        labels = fn(vectors, photos)
        assert labels.shape == (len(vectors),) and labels.max() >= 4
        big = [Counter(people[labels == k]).most_common(1)[0] for k in range(labels.max() + 1)]
        assert sum(n for _, n in big) > len(vectors) // 2


def test_bench_cluster_cli_on_an_lfw_slice(cli):
    res = cli("bench", "cluster", "--lfw", LFW, "--max-people", 3, "--methods", "immich,whispers", "--json")
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    assert d["people"] == 6 and d["people_seen_once"] == 3 and d["photos"] >= 9
    assert d["faces"] >= d["labelled_faces"] >= d["photos"] - d["no_face"] - d["unreadable"]
    assert [r["method"] for r in d["rows"]] == ["adopted", "immich", "whispers"]
    for r in d["rows"]:
        for part in ("pairwise", "bcubed"):
            assert all(0.0 <= r[part][k] <= 1.0 for k in ("precision", "recall", "f1"))
        assert 0 <= r["merged_singletons"] <= 3 and r["seconds"] >= 0
    assert d["rows"][0]["same_photo_pairs"] == 0
    assert set(d["targets"]) >= {"pairwise_precision_met", "adopted_has_best_bcubed_f1"}
    text = cli("bench", "cluster", "--lfw", LFW, "--max-people", 3, "--methods", "dbscan")
    assert text.exit_code == 0 and "pair P" in text.output and "dbscan" in text.output


def test_bench_cluster_cli_refuses_unknown_methods(cli):
    res = cli("bench", "cluster", "--lfw", LFW, "--max-people", 1, "--methods", "kmeans")
    assert res.exit_code == 2 and "kmeans" in res.output
