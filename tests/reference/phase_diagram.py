"""The paper's own training loops, transcribed from the public repository aranguri/phase-diagram
(commit 2f032ab), in NumPy float64, as the tests' independent reference for lindyn.

Sources (cell numbers are the notebooks' code cells, counted from 0):

- ``main.ipynb`` cell 0, ``run(gamma_sigma_sq, gamma_w)``: the Figure 2 grid runs. Dense full-width
  W1 (w x d), W2 (d x w); learning rate 1/(50 w sigma^2) if gamma_w + gamma_sigma_sq > 1 else
  1/(50 ||A*||_op); per iteration i: A = W2 W1, the metrics of A (loss, gen_loss, singular values,
  s_k/s_{k+1}, matrix_rank(A, atol=s_1/5), (||A||_F/||A||_2)^2), then W1 <- W1 - eta W2^T G and
  W2 <- W2 - eta G W1^T with the *new* W1 (G = A - Y from before the updates), then the stopping rules
  on the histories up to i (loss < 1e-3; i > 3 and gen_losses rising twice; i > 3 and a loss step
  < 2e-4 after a total drop > 1e-2); at most 750 iterations.
- ``dynamics.ipynb`` cell 1, ``run(gamma_sigma_sq, gamma_w)``: the Figure 1 run. The same GD next to
  the self-consistent dynamics B <- B - eta [ (B B^T + (sigma^2 w)^2 I)^{1/2} G + G (B^T B + ...)^{1/2} ]
  from B = W2(0) W1(0), each square root through its own SVD; the losses are taken *after* each
  update (iterations 1..100), the singular values before the loop and after each update; no stopping.
- ``diagrams/*.ipynb`` cell 2: the summaries of Figure 2: min(gen_losses), stable_ranks[argmin(gen_losses)],
  argmin(gen_losses) (iterations until the minimal test error), log(max(distance)).

What differs from the notebooks, on purpose:
- float64 NumPy instead of torch float32 on a GPU (lindyn's default dtype; the comparison is then at
  round-off level, not at float32's);
- the task and the weights are arguments (the notebooks draw them with torch.randn inside);
- ``order``: the notebooks' GD is "sequential" (W2's update uses the new W1); "simultaneous" (the old W1)
  is the one-line change the issue asks to compare too;
- the distance (1/d^2) ||A_GD - A_SC||_F^2: the cell that recorded it (``z[3]`` of mse_exp13.pickle) is not
  in the repository; it is computed here from its definition (method.md section 5) at every iteration;
- the learning rate and the threshold take the *unfloored* w = d^gamma_w, as the notebooks do (lindyn
  uses the integer width); the tests pass the width itself so that the two agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


def paper_learning_rate(d: int, gamma_sigma_sq: float, gamma_w: float, A_star: np.ndarray, c_lr: float) -> float:
    """main.ipynb cell 0, eta(): 1/(c_lr w sigma^2) if gamma_w + gamma_sigma_sq > 1, else 1/(c_lr ||A*||_op),
    with w = d^gamma_w and sigma^2 = d^gamma_sigma_sq unfloored (c_lr = 50 there, 5 in dynamics.ipynb)."""
    w = d**gamma_w
    sigma_sq = d**gamma_sigma_sq
    if gamma_w + gamma_sigma_sq > 1:
        return 1 / (c_lr * w * sigma_sq)
    return 1 / (c_lr * np.linalg.norm(A_star, ord=2))


@dataclass
class Metrics:
    """Per-iteration lists, named as in main.ipynb."""

    losses: list[float] = field(default_factory=list)  # train error (1/d^2) ||A - Y||_F^2
    gen_losses: list[float] = field(default_factory=list)  # test error (1/d^2) ||A - A*||_F^2
    svs: list[np.ndarray] = field(default_factory=list)
    ratios: list[float] = field(default_factory=list)  # s_k / s_{k+1}
    ranks: list[int] = field(default_factory=list)  # #{s_i > s_1 / 5}
    stable_ranks: list[float] = field(default_factory=list)  # (||A||_F / ||A||_2)^2

    def append(self, A: np.ndarray, A_star: np.ndarray, E: np.ndarray, k: int) -> None:
        d = A.shape[0]
        self.losses.append(np.linalg.norm(A - (A_star + E)) ** 2 / d**2)
        self.gen_losses.append(np.linalg.norm(A - A_star) ** 2 / d**2)
        s = np.linalg.svd(A, compute_uv=False)
        self.svs.append(s)
        self.ratios.append(s[k - 1] / s[k])
        self.ranks.append(int(np.linalg.matrix_rank(A, tol=s[0] / 5)))
        self.stable_ranks.append((np.linalg.norm(A) / np.linalg.norm(A, ord=2)) ** 2)

    def summary(self) -> dict[str, float]:
        """The diagrams' cell 2: minimal test error, its iteration (np.argmin: the first), the stable rank
        and rank there."""
        j = int(np.argmin(self.gen_losses))
        return {
            "min_test_error": float(self.gen_losses[j]),
            "min_test_error_step": j,
            "stable_rank_at_min": float(self.stable_ranks[j]),
            "rank_at_min": self.ranks[j],
        }


@dataclass
class GDRun:
    metrics: Metrics
    i: int  # the last iteration (main.ipynb returns it)
    stop: str  # which rule broke the loop, or "max_steps"


def gd_run(
    A_star: np.ndarray,
    E: np.ndarray,
    W1: np.ndarray,
    W2: np.ndarray,
    eta: float,
    k: int,
    iterations: int = 750,
    order: str = "sequential",
    stopping: bool = True,
) -> GDRun:
    """main.ipynb cell 0, the loop of run(): metrics of A = W2 W1, the two updates, then the stopping rules."""
    m = Metrics()
    stop = "max_steps"
    i = -1
    for i in range(iterations):
        A = W2 @ W1
        m.append(A, A_star, E, k)
        W1_old = W1
        W1 = W1 - eta * W2.T @ (A - (A_star + E))
        W2 = W2 - eta * (A - (A_star + E)) @ (W1 if order == "sequential" else W1_old).T
        if not stopping:
            continue
        loss, losses, gen_losses = m.losses[-1], m.losses, m.gen_losses
        if loss < 1e-3:
            stop = "train_converged"
            break
        if i > 3:
            if gen_losses[-3] < gen_losses[-2] < gen_losses[-1]:
                stop = "test_rising"
                break
            if np.abs(losses[-1] - losses[-2]) < 2e-4 and losses[0] - losses[-1] > 1e-2:
                stop = "plateau"
                break
    return GDRun(m, i, stop)


def _sqrt_by_svd(M: np.ndarray) -> np.ndarray:
    """dynamics.ipynb cell 1: U, S, VT = svd(M); U sqrt(diag(S)) VT."""
    U, S, VT = np.linalg.svd(M)
    return U @ np.diag(np.sqrt(S)) @ VT


@dataclass
class DynamicsRun:
    """dynamics.ipynb's lists: losses after each update (iterations 1..n), singular values at 0..n;
    plus the per-iteration GD/self-consistent distance at 0..n and A at every iteration of both."""

    losses_gd: list[float]
    losses_approx: list[float]
    gen_losses_gd: list[float]
    gen_losses_ap: list[float]
    svs_gd: list[np.ndarray]
    svs_ap: list[np.ndarray]
    distance: list[float]

    @property
    def max_distance(self) -> float:
        return float(np.max(self.distance))

    @property
    def log_max_distance(self) -> float:
        """diagram-distance-between-dynamics.ipynb cell 2: np.log(np.max(distance))."""
        return float(np.log(np.max(self.distance)))


def dynamics_run(
    A_star: np.ndarray,
    E: np.ndarray,
    W1: np.ndarray,
    W2: np.ndarray,
    eta: float,
    threshold: float,
    iterations: int = 100,
    order: str = "sequential",
) -> DynamicsRun:
    """dynamics.ipynb cell 1, run(): GD and the self-consistent dynamics (threshold = sigma^2 w) side by side."""
    d = A_star.shape[0]
    B = W2 @ W1
    eye = np.eye(d)
    out = DynamicsRun([], [], [], [], [], [], [])
    out.svs_gd.append(np.linalg.svd(W2 @ W1, compute_uv=False))
    out.svs_ap.append(np.linalg.svd(B, compute_uv=False))
    out.distance.append(np.linalg.norm(W2 @ W1 - B) ** 2 / d**2)
    for _ in range(iterations):
        # GD dynamics
        A = W2 @ W1
        W1_old = W1
        W1 = W1 - eta * W2.T @ (A - (A_star + E))
        W2 = W2 - eta * (A - (A_star + E)) @ (W1 if order == "sequential" else W1_old).T
        # Approx. dynamics
        G = B - (A_star + E)
        left = _sqrt_by_svd(B @ B.T + threshold**2 * eye)
        right = _sqrt_by_svd(B.T @ B + threshold**2 * eye)
        B = B - eta * (left @ G + G @ right)
        # Losses
        out.losses_gd.append(np.linalg.norm(W2 @ W1 - (A_star + E)) ** 2 / d**2)
        out.losses_approx.append(np.linalg.norm(B - (A_star + E)) ** 2 / d**2)
        out.gen_losses_gd.append(np.linalg.norm(W2 @ W1 - A_star) ** 2 / d**2)
        out.gen_losses_ap.append(np.linalg.norm(B - A_star) ** 2 / d**2)
        out.svs_gd.append(np.linalg.svd(W2 @ W1, compute_uv=False))
        out.svs_ap.append(np.linalg.svd(B, compute_uv=False))
        out.distance.append(np.linalg.norm(W2 @ W1 - B) ** 2 / d**2)
    return out


def draw_task(d: int, k: int, noise_std: float, task_seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(A*, E) as lindyn documents its draw (method.md section 1; the draw order C, D, E from
    numpy's default_rng(task_seed)), written here from that description: A* = C D^T with entries of C, D
    N(0, k^{-1/2}) (std k^{-1/4}, main.ipynb's ``k ** (-1/4) * randn``), E with entries N(0, noise_std^2)."""
    rng = np.random.default_rng(task_seed)
    C = rng.normal(0.0, k**-0.25, size=(d, k))
    D = rng.normal(0.0, k**-0.25, size=(d, k))
    E = rng.normal(0.0, 1.0, size=(d, d)) * noise_std
    return C @ D.T, E


def draw_dense_weights(d: int, width: int, sigma_sq: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """W1 (w x d) then W2 (d x w), entries N(0, sigma^2) (main.ipynb's ``sigma_sq ** (1/2) * randn``), from
    numpy's default_rng(seed) in that order, as lindyn documents its dense draw."""
    rng = np.random.default_rng(seed)
    W1 = rng.standard_normal((width, d)) * np.sqrt(sigma_sq)
    W2 = rng.standard_normal((d, width)) * np.sqrt(sigma_sq)
    return W1, W2
