"""Every field of the request is in the cache key: a change of any field that changes the result changes the
key (else a different request would be answered with an old run), and a change that does not change the
result (the backend) leaves it alone. The test walks SimulationRequest's fields: a new field fails it until
it is given a variant here."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from dynamics import SimulationRequest, simulate

BASE: dict[str, Any] = dict(
    d=6, rank=2, gamma_sigma2=-1.5, gamma_w=2.0, dynamics=["gd", "self_consistent"], steps=60, backend="numpy"
)

#: field -> the base request with that field changed (and only the other form of the same quantity dropped)
VARIANTS: dict[str, dict[str, Any]] = {
    "d": {"d": 7},
    "rank": {"rank": 3},
    "noise_std": {"noise_std": 0.5},
    "task_seed": {"task_seed": 1},
    "seed": {"seed": 1},
    "gamma_sigma2": {"gamma_sigma2": -1.4},
    "gamma_w": {"gamma_w": 2.1},
    "sigma2": {"gamma_sigma2": None, "sigma2": 0.05},
    "width": {"gamma_w": None, "width": 20},
    "dynamics": {"dynamics": ["gd", "lazy"]},
    "steps": {"steps": 61},
    "lr": {"lr": 0.01},
    "lr_constant": {"lr_constant": 6.0},
    "stopping": {"stopping": "paper"},
    "gd_update": {"gd_update": "sequential"},
    "init": {"init": "dense"},
    "dtype": {"dtype": "float32"},
    "record_every": {"record_every": 2},
    "spectrum_every": {"spectrum_every": 5},
}
#: fields whose change leaves the result (and so the key) unchanged
SAME_RESULT: dict[str, dict[str, Any]] = {"backend": {"backend": "auto"}}


def _request(change: dict[str, Any]) -> SimulationRequest:
    body = {**BASE, **change}
    return SimulationRequest(**{k: v for k, v in body.items() if v is not None})


def _fingerprint(req: SimulationRequest) -> list[Any]:
    """Everything a run stores about its numbers: summaries, comparison, each trajectory and spectrum."""
    res = simulate(req)
    out: list[Any] = [res.lr, res.threshold, {n: s.as_dict() for n, s in res.summaries.items()}]
    out.append(None if res.comparison is None else res.comparison.distance.tolist())
    for name, t in sorted(res.trajectories.items()):
        out += [name, t.step.tolist(), t.spectrum_steps.tolist(), t.spectrum.tolist()]
        out += [np.asarray(t.metrics[c]).tolist() for c in sorted(t.metrics)]
    return out


def test_every_field_is_covered() -> None:
    assert set(VARIANTS) | set(SAME_RESULT) == set(SimulationRequest.model_fields)


@pytest.mark.parametrize("field", sorted(VARIANTS))
def test_a_change_of_the_result_changes_the_key(field: str) -> None:
    base, other = _request({}), _request(VARIANTS[field])
    assert other.normalized()[field] != base.normalized()[field]
    assert _fingerprint(other) != _fingerprint(base), f"the variant of {field} should change the result"
    assert other.cache_key() != base.cache_key()


@pytest.mark.parametrize("field", sorted(SAME_RESULT))
def test_a_change_without_effect_keeps_the_key(field: str) -> None:
    base, other = _request({}), _request(SAME_RESULT[field])
    assert other.normalized()[field] != base.normalized()[field]
    assert _fingerprint(other) == _fingerprint(base)
    assert other.cache_key() == base.cache_key()


def test_the_key_is_the_same_for_the_same_request_written_differently() -> None:
    """gamma_w = 2 at d = 6 is width 36; both forms are one request, one key."""
    a = _request({})
    b = _request({"gamma_w": None, "width": 36})
    assert a.cache_key() == b.cache_key()
    assert _request({"dynamics": ["self_consistent", "gd"]}).cache_key() == a.cache_key()


def test_the_key_of_a_stored_run_does_not_change_between_versions() -> None:
    """Stored runs are found by their key: its derivation (sha256 of the normalised request without the backend,
    as JSON with sorted keys and no blanks) is fixed. A new request field changes every key (a new default
    enters the JSON): update this value then, on purpose."""
    req = SimulationRequest(d=6, rank=2, sigma2=0.05, width=20, backend="numpy")
    assert req.cache_key() == "43672040bd4f5f520eea86526db5ef5d15f6703fc1fae136910eba9d6e8d0ede"
