"""PhaseWin (arXiv 2511.10914) on synthetic set functions: a hand-traced run, optimality, weights."""

import pytest
import torch
from torch import nn

from captum_submodular import ObjectiveWeights, SubmodularAttribution
from captum_submodular.search import SEARCHES, PhaseWinSearch, get_search, run_search


def modular(weights):
    w = torch.as_tensor(weights, dtype=torch.float64)
    return lambda z: z.double() @ w


def test_hand_traced_run_with_the_published_defaults():
    # F(S) = Σ w_i, m = 10, so the window is ⌊0.3·10⌋ = 3.
    w = [10, 6, 5.9, 5.95, 2, 1, -9.5, 0.5, -3, 4]
    # Phase 1 (S = ∅, F = 0):
    #   start: score all 10, accept 0 (10).                                    10 queries
    #   screen {1..9} given {0}: G = 16 (region 1); 6 scores 0.5 < 0.05·16 → pruned;
    #   list (≥ 0.6·16 = 9.6) by value: 1, 3, 2, 9, 4, 5, 7; band: 8.           9 queries
    #   window [1, 3, 2]: all ≥ max(9.6, 0.99·16); accept 1 (16); then 3 (15.95):
    #   16/15.95 − 10/16 = 0.378 > 0.02 and 15.95 ≥ 0.98·16 → accept 3 and end.  3 queries
    # Phase 2 (S = {0,1,3}, F = 21.95), pool {2,4,5,7,8,9}:
    #   start: accept 2 (27.85).                                                 6 queries
    #   screen {4,5,7,8,9}: G = 31.85 (9); nothing pruned; list 9, 4, 5, 7, 8.   5 queries
    #   window [9, 4, 5]: only 9 ≥ 0.99·31.85; accept 9 (no exit test yet).      3 queries
    #   refill with 7 → [4, 5, 7]: only 4 (33.85) ≥ 0.99·33.85;
    #   31.85/33.85 − 27.85/31.85 = 0.067 > 0.02 and 33.85 ≥ 0.98·31.85 → accept 4, end.
    #                                                                            3 queries
    # Phase 3 (F = 33.85), pool {5,7,8}: start: accept 5 (34.85).                 3 queries
    #   screen {7,8}: list 7, 8; window [7, 8]: accept 7 (35.35).          2 + 2 queries
    #   window [8]: 32.35 ≥ 0.99·32.35, but 35.35/32.35 − 34.85/35.35 = 0.107 > 0.02
    #   and 32.35 < 0.98·35.35 → end the phase without it.                       1 query
    # Phase 4: start: accept 8.                                                   1 query
    # The pruned pool {6}: scored once, appended.                                 1 query
    out = run_search(PhaseWinSearch(), 10, modular(w))
    assert out.order == [0, 1, 3, 2, 9, 4, 5, 7, 8, 6]
    assert out.n_queries == 10 + 9 + 3 + 6 + 5 + 3 + 3 + 3 + 2 + 2 + 1 + 1 + 1 == 49
    # Distinct inputs: the full input; two per queried subset, except repeats (the first
    # window of each phase, phase 4's set V∖{6} and its complement {6}, both inputs of
    # phase 1's query of {6}) and the final V (only x[∅] is new): 1 + 2·38 + 1 = 78.
    # The curves add the one prefix never queried, {0, 1, 3} (3 was batch-accepted): +2.
    assert out.n_evaluations == 80


@pytest.mark.parametrize("m", [2, 3, 7, 10, 25, 49])
def test_modular_functions_give_the_optimal_order_without_deferral(m):
    gen = torch.Generator().manual_seed(m)
    w = torch.randperm(4 * m, generator=gen)[:m].double() - 1.5 * m  # distinct, some negative
    out = run_search(PhaseWinSearch(defer_temperature=0.0), m, modular(w))
    assert out.order == torch.argsort(w, descending=True).tolist()


def test_deferral_draws_are_seeded():
    gen = torch.Generator().manual_seed(5)
    m = 30
    base = torch.rand(m, generator=gen, dtype=torch.float64)

    def f(z):  # saturating, so the early exit fires late and windows get refilled
        return 1.0 - torch.exp(-(z.double() @ base))

    hot = dict(defer_temperature=50.0, defer_decay=1.0)
    a = run_search(PhaseWinSearch(seed=1, **hot), m, f)
    b = run_search(PhaseWinSearch(seed=1, **hot), m, f)
    assert a == b
    orders = {tuple(run_search(PhaseWinSearch(seed=s, **hot), m, f).order) for s in range(6)}
    cold = tuple(run_search(PhaseWinSearch(defer_temperature=0.0), m, f).order)
    assert len(orders | {cold}) > 1  # the draws change which candidates enter the windows


def test_registered_and_brings_its_objective():
    assert SEARCHES["phasewin"] is PhaseWinSearch
    assert isinstance(get_search("phasewin"), PhaseWinSearch)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    assert SubmodularAttribution(model, search="phasewin").weights == ObjectiveWeights(1, 1, 0, 0)
    own = ObjectiveWeights(20, 5, 0.01, 0)
    assert SubmodularAttribution(model, search="phasewin", weights=own).weights == own
    assert SubmodularAttribution(model, search="greedy").weights == ObjectiveWeights()


def test_rejects_bad_arguments():
    for kwargs in (
        {"window": 0},
        {"beta_del": 1.0},
        {"alpha_sel": 0},
        {"beta_win": 1.5},
        {"n_greedy": -1},
        {"exit_threshold": 0},
        {"defer_temperature": -1},
    ):
        with pytest.raises(ValueError):
            PhaseWinSearch(**kwargs)


def test_warm_start_steps_are_exact_greedy():
    # Submodular coverage function where the first greedy step matters.
    sets = [{0, 1, 2, 3}, {0, 1}, {4, 5, 6}, {2, 3, 7}, {8}, {7, 8, 9}]

    def f(z):
        return torch.tensor([float(len(set().union(*[sets[i] for i in range(6) if row[i]]))) for row in z.tolist()])

    out = run_search(PhaseWinSearch(n_greedy=2, defer_temperature=0.0), 6, f)
    assert out.order[:2] == [0, 2]  # greedy: 4 new elements, then 3
