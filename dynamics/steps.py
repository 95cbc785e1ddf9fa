"""One discrete step of each dynamics (method.md section 3), batched over a leading axis.

Shapes: A, G, Y: (B, d, d) or broadcastable; W1: (B, m, d); W2: (B, d, m); eta, c: (B, 1, 1).
Every function takes the array module ``xp`` first and works unchanged on NumPy and CuPy.
"""

from __future__ import annotations

from typing import Any


def mT(xp: Any, a: Any) -> Any:
    """Transpose of the last two axes."""
    return xp.swapaxes(a, -1, -2)


def gd_step(
    xp: Any, W1: Any, W2: Any, G: Any, eta: Any, order: str, out: tuple[Any, Any] | None = None,
    overwrite_g: bool = False,
) -> tuple[Any, Any]:
    """GD on A = W2 W1 with cost 1/2 ||A - Y||^2, given G = W2 W1 - Y.

    simultaneous: W1 <- W1 - eta W2^T G,  W2 <- W2 - eta G W1^T (old W1).
    sequential:   W1 <- W1 - eta W2^T G,  W2 <- W2 - eta G W1'^T (new W1), the paper's reference code.
    Computed as W1 + W2^T (-eta G) in the product's buffer (in place, no other (B, m, d) array): the same
    numbers, as negating a factor negates a product exactly. ``out``: two arrays shaped like W1, W2 (not
    W1, W2 themselves) to write the new weights into; ``overwrite_g``: -eta G in G's own buffer.
    """
    neG = xp.multiply(G, -eta, out=G) if overwrite_g else (-eta) * G
    W1_new = xp.matmul(mT(xp, W2), neG, out=None if out is None else out[0])
    W1_new += W1
    W2_new = xp.matmul(neG, mT(xp, W1_new if order == "sequential" else W1), out=None if out is None else out[1])
    W2_new += W2
    return W1_new, W2_new


def gram_eigh(xp: Any, A: Any) -> tuple[Any, Any]:
    """Eigen-decomposition of A^T A = V diag(s^2) V^T: returns (s^2 >= 0, ascending; V)."""
    s2, V = xp.linalg.eigh(xp.matmul(mT(xp, A), A))
    return xp.maximum(s2, 0.0), V


def self_consistent_direction(xp: Any, A: Any, G: Any, c: Any, s2: Any, V: Any) -> Any:
    """(A A^T + c^2 I)^{1/2} G + G (A^T A + c^2 I)^{1/2}, from ONE decomposition A^T A = V diag(s^2) V^T.

    With f = sqrt(s^2 + c^2):  (A^T A + c^2)^{1/2} = V diag(f) V^T  and
    (A A^T + c^2)^{1/2} = c I + (A V) diag(1 / (f + c)) (A V)^T   (since f - c = s^2 / (f + c)),
    which needs no left singular vectors and stays finite as s -> 0 (for c = 0 the term of s = 0 is 0).
    """
    c_vec = c[..., 0]  # (B, 1)
    f = xp.sqrt(s2 + c_vec * c_vec)  # (B, d)
    denom = f + c_vec
    tiny = xp.finfo(A.dtype).tiny
    h = xp.where(denom > tiny, 1.0 / xp.maximum(denom, tiny), 0.0)
    AV = xp.matmul(A, V)
    AVtG = xp.matmul(mT(xp, AV), G)
    AV *= h[..., None, :]  # element-wise updates in place: the same numbers, fewer (B, d, d) temporaries
    left = xp.matmul(AV, AVtG)
    left += c * G
    GV = xp.matmul(G, V)
    GV *= f[..., None, :]
    left += xp.matmul(GV, mT(xp, V))
    return left


def self_consistent_step(xp: Any, A: Any, G: Any, eta: Any, c: Any, s2: Any = None, V: Any = None) -> Any:
    """The paper's equation (1): A <- A - eta [ (A A^T + c^2 I)^{1/2} G + G (A^T A + c^2 I)^{1/2} ], c = sigma^2 w.

    Pass the decomposition (s2, V) of A^T A if already computed (the metrics reuse it).
    """
    if s2 is None or V is None:
        s2, V = gram_eigh(xp, A)
    step = self_consistent_direction(xp, A, G, c, s2, V)
    step *= -eta  # A + (-eta) D, in D's buffer: the same numbers as A - eta D
    step += A
    return step


def balanced_step(xp: Any, A: Any, G: Any, eta: Any, s2: Any = None, V: Any = None) -> Any:
    """The active limit c -> 0: A <- A - eta [ (A A^T)^{1/2} G + G (A^T A)^{1/2} ]."""
    return self_consistent_step(xp, A, G, eta, xp.zeros_like(eta), s2, V)


def lazy_step(xp: Any, A: Any, G: Any, eta: Any, c: Any) -> Any:
    """The NTK limit c -> infinity: A <- A - 2 eta c G."""
    return A - 2.0 * eta * c * G
