import numpy as np

from greenfl.scheduling.deadline import close_round

INF = np.inf


def test_over_selection_keeps_the_first_k() -> None:
    total = np.array([5.0, 1.0, 3.0, 2.0])
    c = close_round(total, np.full(4, INF), np.zeros(4, bool), k=2, deadline_s=None)
    assert c.close_s == 2.0
    assert c.status.tolist() == ["straggler", "completed", "straggler", "completed"]
    assert c.active_s.tolist() == [2.0, 1.0, 2.0, 2.0]  # stragglers stop at the close


def test_deadline_drops_late_clients_and_waits_for_it() -> None:
    total = np.array([1.0, 10.0, 2.0])
    c = close_round(total, np.full(3, INF), np.zeros(3, bool), k=3, deadline_s=4.0)
    assert c.close_s == 4.0
    assert c.status.tolist() == ["completed", "straggler", "completed"]
    assert c.active_s.tolist() == [1.0, 4.0, 2.0]


def test_dropouts_count_until_they_drop() -> None:
    total = np.array([4.0, 4.0])
    drop = np.array([1.5, INF])
    c = close_round(total, drop, np.zeros(2, bool), k=2, deadline_s=None)
    assert c.status.tolist() == ["dropped", "completed"]
    assert c.active_s.tolist() == [1.5, 4.0]
    assert c.close_s == 4.0


def test_failed_reports_are_not_accepted() -> None:
    total = np.array([1.0, 2.0])
    c = close_round(total, np.full(2, INF), np.array([True, False]), k=2, deadline_s=None)
    assert c.status.tolist() == ["failed", "completed"]
