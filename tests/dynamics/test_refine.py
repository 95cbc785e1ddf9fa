"""The refinement rule (dynamics/refine.py) on synthetic step functions: the points it adds concentrate at the
discontinuity, within the budget, never twice, and the same input gives the same points."""

from __future__ import annotations

import itertools

import numpy as np

from dynamics.refine import leaves, midpoint, refine, round_budget, split_points


def rounds(coarse, f, budget, n_rounds, integer=None):
    """Run ``n_rounds`` of refinement of ``f`` from the coarse grid; every point and the points added."""
    values = {p: f(p) for p in itertools.product(*coarse)}
    added = []
    for k in range(n_rounds):
        new = refine(coarse, values, round_budget(budget, len(added), n_rounds - k), integer)
        assert len(set(new)) == len(new) and not set(new) & set(values)
        values.update({p: f(p) for p in new})
        added += new
    return values, added


def test_1d_bisects_towards_the_step():
    coarse = [list(np.linspace(0.0, 1.0, 5))]
    _, added = rounds(coarse, lambda p: float(p[0] > 0.3), budget=6, n_rounds=6)
    # the step lies in [0.25, 0.5]: each round bisects the one interval holding it
    assert added == [(0.375,), (0.3125,), (0.28125,), (0.296875,), (0.3046875,), (0.30078125,)]


def test_2d_points_concentrate_at_the_line():
    # the paper's axes and its active/lazy line gamma_sigma2 + gamma_w = 1, as a step
    coarse = [list(np.linspace(-3.0, 0.0, 5)), list(np.linspace(0.5, 3.5, 5))]
    values, added = rounds(coarse, lambda p: float(p[0] + p[1] > 1.0), budget=120, n_rounds=3)
    assert 0 < len(added) <= 120
    distance = np.array([abs(x + y - 1.0) / np.sqrt(2) for x, y in added])
    # a point added belongs to a cell crossed by the line: within the cell's diagonal of it (coarse 0.75 wide)
    assert distance.max() <= 0.75 * np.sqrt(2) + 1e-12
    # most of them much closer: within a quarter of a coarse cell's width
    assert np.mean(distance <= 0.75 / 2) >= 0.75
    # a constant region is never refined: nothing far below the line
    assert all(x + y > -0.5 for x, y in added)


def test_uniform_metric_adds_nothing_and_missing_values_do_not_count():
    coarse = [[0.0, 1.0, 2.0], [0.0, 1.0]]
    flat = {p: 3.0 for p in itertools.product(*coarse)}
    assert refine(coarse, flat, 100) == []
    gaps = {**flat, (0.0, 0.0): None, (1.0, 1.0): float("nan")}
    assert refine(coarse, gaps, 100) == []


def test_budget_is_respected_and_result_is_deterministic():
    coarse = [list(np.linspace(0.0, 1.0, 9)), list(np.linspace(0.0, 1.0, 9))]
    values = {p: float(p[0] > 0.5) + p[1] for p in itertools.product(*coarse)}
    for budget in (0, 1, 4, 5, 7, 11, 40):
        new = refine(coarse, values, budget)
        assert len(new) <= budget
        assert refine(coarse, dict(reversed(list(values.items()))), budget) == new
    # the largest spread first: the column of cells across x = 0.5 (spread 1.125 there vs 0.125 elsewhere)
    first = refine(coarse, values, 5)
    assert len(first) == 5 and all(0.5 <= x <= 0.625 for x, _ in first)


def test_mesh_is_read_back_from_the_points():
    coarse = [[0.0, 1.0], [0.0, 1.0]]
    cell = ((0.0, 0.0), (1.0, 1.0))
    new = split_points(cell, [False, False])
    assert sorted(new) == [(0.0, 0.5), (0.5, 0.0), (0.5, 0.5), (0.5, 1.0), (1.0, 0.5)]
    points = set(itertools.product(*coarse)) | set(new)
    assert len(leaves(coarse, points, [False, False])) == 4


def test_integer_axis_midpoints_are_integers():
    assert midpoint(10, 20, True) == 15 and midpoint(10, 11, True) is None and midpoint(10, 13, True) == 11
    coarse = [[10, 20], [0.0, 1.0]]
    values = {(10, 0.0): 0.0, (10, 1.0): 0.0, (20, 0.0): 1.0, (20, 1.0): 1.0}
    new = refine(coarse, values, 10, [True, False])
    assert sorted(new) == [(10, 0.5), (15, 0.0), (15, 0.5), (15, 1.0), (20, 0.5)]
    assert all(isinstance(x, int) for x, _ in new)


def test_round_budget_shares_what_is_left():
    assert round_budget(300, 0, 2) == 150
    assert round_budget(300, 140, 1) == 160
    assert round_budget(5, 0, 2) == 3
    assert round_budget(5, 9, 1) == 0


# ---- over the real dynamics: the paper's axes at small d --------------------------------------------------------
#: the paper's axes at d = 20, a coarse 5 x 5 grid (cells 0.75 wide), refined twice on GD's minimal test error
PAPER_BASE = {"d": 20, "rank": 2, "steps": 2000, "stopping": "paper", "dynamics": ["gd"], "spectrum_every": 0}
PAPER_AXES = {"gamma_sigma2": [float(v) for v in np.linspace(-3.0, 0.0, 5)],
              "gamma_w": [float(v) for v in np.linspace(0.5, 3.5, 5)]}
PAPER_METRIC, PAPER_ROUNDS, PAPER_BUDGET = "min_test_error", 2, 60
#: "near the active/lazy line": within half a coarse cell's diagonal of gamma_sigma2 + gamma_w = 1
NEAR = 0.75 * np.sqrt(2) / 2


def distance_to_active_lazy_line(points) -> np.ndarray:
    """Euclidean distance of (gamma_sigma2, gamma_w) points to the line gamma_sigma2 + gamma_w = 1."""
    p = np.asarray(points, dtype=float).reshape(-1, 2)
    return np.abs(p[:, 0] + p[:, 1] - 1.0) / np.sqrt(2)


def uniform_share_near_line() -> float:
    """The share of the axes' rectangle within NEAR of the line (what points spread evenly would give),
    on a 601 x 601 lattice."""
    gs, gw = np.meshgrid(np.linspace(-3.0, 0.0, 601), np.linspace(0.5, 3.5, 601))
    return float(np.mean(distance_to_active_lazy_line(np.c_[gs.ravel(), gw.ravel()]) <= NEAR))


def paper_refinement(budget=PAPER_BUDGET, metric=PAPER_METRIC, rounds=PAPER_ROUNDS, **base):
    """Coarse grid, then ``rounds`` rounds, each point simulated (simulate_batch); the points per round and every
    point's value. ``base``: request fields over PAPER_BASE (e.g. seeds)."""
    from dynamics import simulate_batch
    from dynamics.request import parse_request

    def metric_of(points):
        requests = [parse_request({**PAPER_BASE, **base, "gamma_sigma2": a, "gamma_w": b}) for a, b in points]
        return {p: getattr(r.summaries["gd"], metric) for p, r in zip(points, simulate_batch(requests))}

    coarse = [PAPER_AXES["gamma_sigma2"], PAPER_AXES["gamma_w"]]
    values = metric_of(list(itertools.product(*coarse)))
    per_round = []
    for k in range(rounds):
        new = refine(coarse, values, round_budget(budget, sum(map(len, per_round)), rounds - k))
        values.update(metric_of(new))
        per_round.append(new)
    return per_round, values


def test_refinement_of_the_paper_axes_concentrates_at_the_active_lazy_line():
    per_round, values = paper_refinement()
    added = [p for r in per_round for p in r]
    assert 0 < len(added) <= PAPER_BUDGET and all(len(r) > 0 for r in per_round)
    share = float(np.mean(distance_to_active_lazy_line(added) <= NEAR))
    uniform = uniform_share_near_line()
    # measured: 45 of 59 points (0.76) within 0.53 of the line, where an even spread puts 0.41 of them
    assert share >= 0.65 and share >= 1.5 * uniform, (share, uniform)
    # and the same request, the same points
    assert paper_refinement()[0] == per_round
