"""How the in-catalog decision is fitted (`open_set.fit`): its non-negative logistic weights and its default
threshold, from the leave-one-category-out scores."""

from __future__ import annotations

import numpy as np

#: Share of the left-out known queries the default threshold flags (`choose_threshold`).
KNOWN_FLAGGED = 0.02
#: The L2 penalty of the fit (standardised features).
C = 1.0
EPS = 1e-3


def logistic(features: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, float]:
    """L2-penalised logistic regression with weights >= 0 (L-BFGS-B): each feature reads "closer", so the fit
    may ignore one but never reward being farther (which the hardest left-out categories would teach it)."""
    from scipy.optimize import minimize  # here: searching needs no scipy

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        z = features @ w[:-1] + w[-1]
        residual = 1.0 / (1.0 + np.exp(-z)) - labels
        value = np.sum(np.logaddexp(0.0, z) - labels * z) + 0.5 / C * np.sum(w[:-1] ** 2)
        return float(value), np.r_[features.T @ residual + w[:-1] / C, residual.sum()]

    count = features.shape[1]
    fitted = minimize(loss, np.zeros(count + 1), jac=True, method="L-BFGS-B",
                      bounds=[(0.0, None)] * count + [(None, None)])
    return fitted.x[:-1], float(fitted.x[-1])


def choose_threshold(known: np.ndarray, unknown: np.ndarray) -> float:
    """The score below which KNOWN_FLAGGED of the left-out known queries fall (the rate at which a shopper's
    photo of something the shop sells is told "nothing like this"), or lower: the cut that best tells the two
    sides apart, when that is lower (two sides apart, it is midway between them). Not the balanced optimum
    alone: the left-out categories are the hardest unknowns there are (oat milk left out of a catalog with soy
    milk), so the balance between them flags a fifth of real queries, while a real query from elsewhere (a
    watch in a grocery catalog) scores far below either."""
    candidates = np.unique(np.concatenate([known, unknown]))
    cuts = np.r_[candidates[0] - EPS, (candidates[1:] + candidates[:-1]) / 2, candidates[-1] + EPS]
    balanced = (known[None, :] >= cuts[:, None]).mean(1) + (unknown[None, :] < cuts[:, None]).mean(1)
    best = np.flatnonzero(balanced >= balanced.max() - 1e-12)
    return float(min(np.quantile(known, KNOWN_FLAGGED), cuts[best[len(best) // 2]]))
