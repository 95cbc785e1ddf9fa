"""Metrics of A from its singular values (method.md section 5), batched: s has shape (B, d), descending."""

from __future__ import annotations

from typing import Any

from dynamics.steps import mT


def singular_values_from_gram(xp: Any, s2_ascending: Any) -> Any:
    """s_1 >= s_2 >= ... from the (ascending, clipped) eigenvalues of A^T A."""
    return xp.sqrt(xp.maximum(s2_ascending, 0.0))[..., ::-1]


def singular_values(xp: Any, A: Any) -> Any:
    """Singular values of A (descending), values only: eigvalsh of the d x d Gram A^T A.

    Absolute accuracy about eps * s_1 (relative eps for s_i ~ s_1, eps s_1^2 / s_i for small s_i).
    """
    s2 = xp.linalg.eigvalsh(xp.matmul(mT(xp, A), A))
    return singular_values_from_gram(xp, s2)


def spectral_metrics(xp: Any, s: Any, rank_k: int, threshold: Any) -> dict[str, Any]:
    """stable rank ||A||_F^2 / ||A||_op^2 = sum s_i^2 / s_1^2; rank = #{s_i > s_1 / 5};
    gap ratio s_k / s_{k+1} (NaN when k = d); number of s_i above the threshold sigma^2 w.

    ``threshold`` has shape (B,). Returns arrays of shape (B,).
    """
    s1 = s[..., 0]
    with ignore_fp(xp):
        stable_rank = xp.sum(s * s, axis=-1) / (s1 * s1)
        rank = xp.sum(s > (s1 / 5.0)[..., None], axis=-1)
        d = s.shape[-1]
        gap = s[..., rank_k - 1] / s[..., rank_k] if rank_k < d else xp.full(s1.shape, xp.nan)
        above = xp.sum(s > threshold[..., None], axis=-1)
    return {
        "stable_rank": stable_rank,
        "rank": rank.astype(s.dtype),
        "gap_ratio": gap,
        "n_above_threshold": above.astype(s.dtype),
    }


class ignore_fp:  # noqa: N801 - used like numpy.errstate
    """numpy.errstate(all='ignore') for NumPy; a no-op elsewhere (CuPy does not raise on FP errors)."""

    def __init__(self, xp: Any) -> None:
        self._ctx = xp.errstate(all="ignore") if hasattr(xp, "errstate") else None

    def __enter__(self) -> None:
        if self._ctx is not None:
            self._ctx.__enter__()

    def __exit__(self, *exc: object) -> None:
        if self._ctx is not None:
            self._ctx.__exit__(*exc)

