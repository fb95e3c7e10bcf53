"""The tracker's pure logic: IoU association, track birth and death, embedding schedule, smoothing."""
from __future__ import annotations

import math

import pytest

import numpy as np

from facesearch.boxes import iou, iou_matrix
from facesearch.video.tracker import Tracker, associate, drop_nested, vote

THR = 0.4


def test_iou_of_identical_disjoint_and_half_overlapping_boxes():
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == pytest.approx(1.0)
    assert iou((0, 0, 10, 10), (20, 20, 10, 10)) == 0.0
    assert iou((0, 0, 10, 10), (10, 0, 10, 10)) == 0.0  # touching edges do not overlap
    # 10x10 boxes shifted by 5 px: intersection 50, union 150.
    assert iou((0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(1 / 3)
    # A box with no area overlaps nothing, not even itself.
    assert iou((5, 5, 0, 10), (5, 5, 0, 10)) == 0.0


def test_iou_row_by_row_and_every_pair_agree_with_single_pairs():
    a = [(0, 0, 10, 10), (5, 0, 10, 10), (100, 100, 4, 4)]
    b = [(5, 0, 10, 10), (0, 0, 10, 10), (0, 0, 20, 20)]
    single = np.array([[iou(x, y) for y in b] for x in a])
    assert single[0].tolist() == pytest.approx([1 / 3, 1.0, 0.25])
    assert iou_matrix(a, b) == pytest.approx(single)
    assert iou_matrix(a, b).shape == (3, 3) and iou_matrix([], b).shape == (0, 3)
    # Row by row (boxnet's predicted boxes against the true ones) is the diagonal.
    assert iou(np.array(a, np.float32), np.array(b, np.float32)) == pytest.approx(np.diag(single))


def test_associate_pairs_by_best_total_overlap_and_leaves_the_rest():
    tracks = [(0, 0, 100, 100), (200, 0, 100, 100), (500, 500, 50, 50)]
    boxes = [(205, 5, 100, 100), (3, 2, 100, 100), (900, 900, 40, 40)]
    pairs, lost, new = associate(tracks, boxes, iou_threshold=0.3)
    assert sorted(pairs) == [(0, 1), (1, 0)]
    assert lost == [2]
    assert new == [2]


def test_associate_uses_the_assignment_not_greedy_choice():
    # Box 0 overlaps both tracks; greedy on the best single IoU (track 0 <-> box 0) would leave
    # track 1 without a box. The assignment gives each track its own box.
    tracks = [(0, 0, 100, 100), (40, 0, 100, 100)]
    boxes = [(20, 0, 100, 100), (-20, 0, 100, 100)]
    pairs, lost, new = associate(tracks, boxes)
    assert sorted(pairs) == [(0, 1), (1, 0)]
    assert lost == [] and new == []


def test_associate_with_nothing_on_one_side():
    assert associate([], [(0, 0, 1, 1)]) == ([], [], [0])
    assert associate([(0, 0, 1, 1)], []) == ([], [0], [])


def test_tracks_are_born_followed_and_removed_after_max_missed():
    tracker = Tracker(THR, max_missed=3)
    step = tracker.update([(100, 100, 80, 80)], frame=0)
    assert [t.id for t in step.born] == [1] and step.died == []
    first = step.tracks[0]
    # The face moves a little: same track.
    step = tracker.update([(108, 104, 82, 82)], frame=1)
    assert step.tracks[0] is first and step.born == []
    assert first.box == (108.0, 104.0, 82.0, 82.0) and first.last_frame == 1
    # Gone for two frames: still alive; the third miss removes it.
    assert tracker.update([], frame=2).died == []
    assert tracker.update([], frame=3).died == []
    step = tracker.update([], frame=4)
    assert step.died == [first]
    assert tracker.tracks == []
    # A face in the same place later is a new track.
    step = tracker.update([(100, 100, 80, 80)], frame=5)
    assert [t.id for t in step.born] == [2]


def test_a_track_found_again_before_max_missed_keeps_its_id_and_is_re_embedded():
    tracker = Tracker(THR, max_missed=3)
    track = tracker.update([(100, 100, 80, 80)], frame=0).tracks[0]
    tracker.record(track, "obama", 0.8)
    tracker.update([(100, 100, 80, 80)], frame=1)
    tracker.record(track, "obama", 0.8)
    tracker.update([], frame=2)
    step = tracker.update([(102, 100, 80, 80)], frame=3)
    assert step.tracks[0] is track and step.born == []
    assert tracker.needs_embedding(track)  # it may be someone else who stepped in


def test_two_faces_get_two_tracks_and_keep_them_when_they_move():
    tracker = Tracker(THR)
    a, b = tracker.update([(0, 0, 100, 100), (300, 0, 100, 100)], frame=0).tracks
    step = tracker.update([(310, 5, 100, 100), (10, 5, 100, 100)], frame=1)
    assert step.tracks == [b, a]


def test_embedding_schedule():
    tracker = Tracker(THR, every=3)
    track = tracker.update([(0, 0, 100, 100)], frame=0).tracks[0]
    assert tracker.needs_embedding(track)          # new
    tracker.record(track, "obama", 0.8)
    tracker.update([(0, 0, 100, 100)], frame=1)
    assert tracker.needs_embedding(track)          # not settled yet: one match only
    tracker.record(track, "obama", 0.8)
    assert track.settled
    schedule = []
    for frame in range(2, 8):
        tracker.update([(0, 0, 100, 100)], frame=frame)
        schedule.append(tracker.needs_embedding(track))
        if schedule[-1]:
            tracker.record(track, "obama", 0.8)
    assert schedule == [False, False, True, False, False, True]  # every 3rd analysed frame
    # A big change of box (scale or position) asks for an embedding at once.
    tracker.update([(0, 0, 150, 150)], frame=8)
    assert iou((0, 0, 150, 150), (0, 0, 100, 100)) < 0.5
    assert tracker.needs_embedding(track)


def test_a_track_near_the_threshold_is_embedded_every_frame():
    tracker = Tracker(THR, every=10, margin=0.05)
    track = tracker.update([(0, 0, 100, 100)], frame=0).tracks[0]
    tracker.record(track, "biden", 0.42)
    tracker.update([(0, 0, 100, 100)], frame=1)
    tracker.record(track, "biden", 0.43)
    assert track.settled
    tracker.update([(0, 0, 100, 100)], frame=2)
    assert tracker.needs_embedding(track)


def test_without_smoothing_every_face_is_embedded_and_the_raw_answer_shown():
    tracker = Tracker(THR, smoothing=False)
    track = tracker.update([(0, 0, 100, 100)], frame=0).tracks[0]
    assert tracker.record(track, "obama", 0.8)
    tracker.update([(0, 0, 100, 100)], frame=1)
    assert tracker.needs_embedding(track)
    assert tracker.record(track, "biden", 0.5)
    assert track.identity == "biden"


def test_vote_weighs_by_similarity_and_unknown_counts_as_the_threshold():
    assert vote([("obama", 0.8), ("biden", 0.5), ("obama", 0.7)], THR) == ("obama", pytest.approx(1.5))
    # One strong match outweighs one unknown ...
    assert vote([(None, 0.2), ("obama", 0.9)], THR)[0] == "obama"
    # ... but three unknowns outweigh one marginal match.
    assert vote([(None, 0.3), (None, 0.3), ("obama", 0.45), (None, 0.3)], THR)[0] is None
    assert vote([], THR) == (None, 0.0)


def test_one_bad_match_does_not_flip_a_settled_identity():
    tracker = Tracker(THR, window=5, min_agree=2)
    track = tracker.update([(0, 0, 100, 100)], frame=0).tracks[0]
    events = [tracker.record(track, "obama", 0.45), tracker.record(track, "obama", 0.44)]
    assert events == [False, True] and track.identity == "obama"
    # A single, very confident wrong match: it outweighs obama's two marginal votes in the
    # window, yet the name stays because biden was the answer only once.
    assert not tracker.record(track, "biden", 0.95)
    assert track.identity == "obama"
    assert math.isclose(track.similarity, (0.45 + 0.44) / 2)
    # One unknown frame does not flip it either.
    assert not tracker.record(track, None, 0.1)
    assert track.identity == "obama"
    # Back to obama: no event, nothing changed.
    assert not tracker.record(track, "obama", 0.8)


def test_a_consistent_change_of_identity_takes_over_and_is_reported():
    tracker = Tracker(THR, window=5, min_agree=2)
    track = tracker.update([(0, 0, 100, 100)], frame=0).tracks[0]
    tracker.record(track, "obama", 0.6)
    assert tracker.record(track, "obama", 0.6)
    assert not tracker.record(track, "biden", 0.7)
    assert tracker.record(track, "biden", 0.7)       # second agreeing answer: takes over
    assert track.identity == "biden" and track.settled
    assert track.similarity == pytest.approx(0.7)


def test_unknown_settles_too():
    tracker = Tracker(THR)
    track = tracker.update([(0, 0, 100, 100)], frame=0).tracks[0]
    assert not tracker.record(track, None, 0.25)
    assert track.identity is None and not track.settled
    assert tracker.record(track, None, 0.3)
    assert track.identity is None and track.settled
    assert track.similarity == pytest.approx(0.275)


def test_finish_returns_every_remaining_track():
    tracker = Tracker(THR)
    tracker.update([(0, 0, 10, 10), (50, 50, 10, 10)], frame=0)
    assert [t.id for t in tracker.finish()] == [1, 2]
    assert tracker.tracks == []


@pytest.mark.parametrize("setting", ["every", "max_missed", "window"])
def test_bad_settings_are_refused(setting):
    with pytest.raises(ValueError, match=setting):
        Tracker(THR, **{setting: 0})


def test_a_small_box_in_the_hair_of_a_larger_face_is_dropped():
    face = (100, 100, 100, 120)
    hair = (115, 65, 24, 30)            # the MTCNN false positive seen on the fixture video
    neighbour = (260, 110, 40, 50)      # a smaller face beside the head: kept
    child = (120, 300, 80, 90)          # similar size, below: kept
    assert drop_nested([face, hair, neighbour, child]) == [0, 2, 3]
    # Two faces of similar size overlapping a little (people close together): both kept.
    assert drop_nested([(0, 0, 100, 100), (80, 10, 90, 90)]) == [0, 1]
    assert drop_nested([]) == []
