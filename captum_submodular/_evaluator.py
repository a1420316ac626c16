"""The engine of :class:`~captum_submodular.SubmodularAttribution`: composed inputs, batched.

Each example's searches ask for the values of ``F`` on batches of subsets; the
:class:`Evaluator` composes ``x[S]`` and ``x[V∖S]`` for all of them, evaluates every
distinct composed input once per example (a cache keyed by the subset), in model calls
of at most ``perturbations_per_eval`` rows shared between examples, and turns the model
outputs into target scores and objective values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch
from torch import Tensor, nn

from ._compat import progress
from ._inputs import NonFiniteOutputError, as_output, check_finite_output, rows_afa
from .objective import (
    ObjectiveWeights,
    angular_distances,
    effectiveness,
    objective_values,
    resolve_output_targets,
    target_scores,
)
from .search import SearchContext, start_search

__all__ = ["NonFiniteOutputError", "Example", "Evaluator"]


def _check_finite(values: Tensor, where: str) -> None:
    check_finite_output(values, where)


def _row_keys(rows: Tensor) -> List[bytes]:
    packed = np.packbits(rows.cpu().numpy(), axis=1)
    return [r.tobytes() for r in packed]


@dataclass
class Example:
    """Per-example state while the searches run."""

    index: int
    inputs: Tuple[Tensor, ...]
    base: Tuple[Tensor, ...]
    idx: Tuple[Tensor, ...]
    region_ids: Tensor
    target: Tuple[int, ...]
    cache: Dict[bytes, Tuple[float, float]] = field(default_factory=dict)
    distances: Optional[Tensor] = None
    n_evaluations: int = 0
    n_rounds: int = 0  # sequential rounds of model evaluation (see SubmodularResult.n_rounds)
    output_scale: float = 0.0  # largest |model output| of this example's inputs (see Evaluator.resolution)

    @property
    def m(self) -> int:
        return int(self.region_ids.numel())

    def compose(self, rows: Tensor) -> Tuple[Tensor, ...]:
        """``where(keep, x, b)`` for each bool row (``k×m``) — one batched op per input tensor.

        A select, not arithmetic: kept elements equal ``x`` and removed ones equal the
        baseline exactly, in any dtype (``b + (x − b)·keep`` rounds in float16 and loses
        ``x`` entirely next to a large baseline).
        """
        out = []
        for x, base, idx in zip(self.inputs, self.base, self.idx):
            keep = rows[:, idx.reshape(-1)].reshape((rows.shape[0],) + tuple(idx.shape[1:]))
            out.append(torch.where(keep.to(x.device), x, base))
        return tuple(out)


class Evaluator:
    """Evaluates composed inputs for many examples in shared, bounded model calls."""

    def __init__(
        self,
        owner: Any,
        examples: List[Example],
        add_args: Any,
        n: int,
        batch: int,
        show_progress: Optional[bool],
        auto_threshold: int = 256,
    ) -> None:
        self.owner = owner
        self.examples = examples
        self.add_args = add_args
        self.n = n
        self.batch = batch
        self.output_eps = 0.0  # machine epsilon of the model outputs seen (see `resolution`)
        self.example_shape: Optional[Tuple[int, ...]] = None  # output shape per example, from the first call
        self.bar = None
        # The expected count decides the automatic bar and gives its total; no bar, no count.
        total, bound = self._expected_total(examples) if show_progress is not False else (None, None)
        if show_progress is None:  # automatic: only calls expected to take more than a few seconds
            expected = total if total is not None else bound if bound is not None else sum(e.m * e.m for e in examples)
            show_progress = expected >= auto_threshold
        if show_progress:
            # The total is shown only when it is exact (non-adaptive searches); otherwise the bar
            # counts up and its label gives the bound.
            desc = f"{type(owner).__name__} attribution"
            if total is None and bound is not None:
                desc += f" (at most {bound:,} evals)"
            self.bar = progress(desc=desc, total=total, unit="evals")

    def _expected_total(self, examples: List[Example]) -> Tuple[Optional[int], Optional[int]]:
        """(the exact evaluation count of the call or ``None``, an upper bound or ``None``).

        Per example: the search's exact count (:meth:`SearchStrategy.expected_evaluations`)
        plus the ``m`` single-region inputs of the diversity term and the gradient's input,
        when used.  With a budget below the search's own count the count is not known in
        advance, but the budget bounds it.
        """
        search, owner = self.owner.search, self.owner
        budget = getattr(owner, "max_evaluations", None)
        extra_per_region = 1 if owner.weights.effectiveness != 0 else 0
        extra = 1 if getattr(owner, "within_region", None) == "gradient" else 0
        exact: Optional[int] = 0
        bound: Optional[int] = 0
        for e in examples:
            add = extra_per_region * e.m + extra
            count = search.expected_evaluations(e.m)
            limit = search.evaluation_bound(e.m)
            count = None if count is None else count + add
            limit = None if limit is None else limit + add
            if budget is not None:  # the budget covers everything, the extras included
                allowance = limit is None or search.budget_is_allowance
                limit = budget if allowance else min(limit, budget)
                if count is not None and count > budget:
                    count = None
            exact = None if exact is None or count is None else exact + count
            bound = None if bound is None or limit is None else bound + limit
        return exact, bound

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

    def _count(self, e: Example, k: int) -> None:
        """Record ``k`` model evaluations of ``e``: its count and the progress bar, always together
        (the bar's total counts every evaluation, the gradient's and the embedding's included)."""
        e.n_evaluations += k
        if self.bar is not None:
            self.bar.update(k)

    # ---------------------------------------------------------------- model calls

    def _forward(self, jobs: List[Tuple[Example, Tensor]]) -> Tensor:
        """One model call on the composed inputs of ``jobs`` (≤ batch rows); returns raw output."""
        parts = [e.compose(rows) for e, rows in jobs]
        n_inputs = len(parts[0])
        inputs = tuple(torch.cat([p[j] for p in parts]) for j in range(n_inputs))
        example_idx = torch.cat([torch.full((rows.shape[0],), e.index, dtype=torch.long) for e, rows in jobs])
        args = self._args_for(example_idx)
        with torch.inference_mode():
            out = self.owner.forward_func(*inputs, *args)
        return as_output(out, int(example_idx.shape[0]), "forward_func")

    def _args_for(self, example_idx: Tensor) -> Tuple[Any, ...]:
        """``additional_forward_args`` for rows of the given examples."""
        return rows_afa(self.add_args, example_idx, self.n)

    def _check_shape(self, out: Tensor) -> None:
        """At the first call: the output fits ``output_type`` and every example's target
        (negative indices resolved); later calls must keep the per-example shape."""
        shape = tuple(out.shape[1:])
        if self.example_shape is None:
            resolved = resolve_output_targets(shape, [e.target for e in self.examples], self.owner.output_type)
            for e, t in zip(self.examples, resolved):
                e.target = t
            self.example_shape = shape
        elif shape != self.example_shape:
            raise ValueError(
                f"forward_func returned {shape} values per example, after {self.example_shape} "
                f"in an earlier call; the output shape must not depend on the input values"
            )

    def gradient_saliency(self, e: Example) -> Tuple[Tensor, ...]:
        """``∂p/∂x · (x − baseline)`` for one example (one forward and one backward), float64.

        Raises ``ValueError`` naming ``within_region`` when the model cannot be
        differentiated (it leaves torch, returns a non-tensor, or its score does not
        depend on the inputs through autograd).
        """
        what = "within_region='gradient' differentiates forward_func"
        with torch.enable_grad():
            xs = tuple(x.detach().clone().requires_grad_(True) for x in e.inputs)
            try:
                out = self.owner.forward_func(*xs, *self._args_for(torch.tensor([e.index])))
            except Exception as err:
                raise ValueError(
                    f"{what}, which failed on inputs that require grad ({type(err).__name__}: {err}); "
                    f"use within_region=None for a model that is not differentiable"
                ) from err
            if not isinstance(out, Tensor):
                raise ValueError(
                    f"{what}, which must then return a torch tensor; it returned {type(out).__name__}; "
                    f"use within_region=None"
                )
            out = as_output(out, 1, "forward_func")
            p, _ = target_scores(out, (e.target,), self.owner.output_type)
            if not p.requires_grad:
                raise ValueError(
                    f"{what}, but its score does not depend on the inputs through autograd; use within_region=None"
                )
            grads = torch.autograd.grad(p.sum(), xs, allow_unused=True)
        self._count(e, 1)
        e.n_rounds += 1
        out_grads = []
        for g, x, b in zip(grads, e.inputs, e.base):
            delta = x.double() - b.double()
            out_grads.append(torch.zeros_like(delta) if g is None else g.detach().double() * delta)
        return tuple(out_grads)

    def evaluate(self, requests: List[Tuple[Example, Tensor]], where: str) -> None:
        """Make sure every row of every request is in its example's cache."""
        pending: List[Tuple[Example, Tensor, bytes]] = []
        queued = set()
        for e, rows in requests:
            for row, key in zip(rows, _row_keys(rows)):
                if key not in e.cache and (e.index, key) not in queued:
                    queued.add((e.index, key))
                    pending.append((e, row, key))
        for e in {id(e): e for e, _, _ in pending}.values():
            e.n_rounds += 1  # one round per request with new inputs, however many model calls it takes
        for start in range(0, len(pending), self.batch):
            chunk = pending[start : start + self.batch]
            # group consecutive rows of one example to compose them in one op
            groups: List[Tuple[Example, List[Tensor]]] = []
            for e, row, _ in chunk:
                if groups and groups[-1][0] is e:
                    groups[-1][1].append(row)
                else:
                    groups.append((e, [row]))
            out = self._forward([(e, torch.stack(rows)) for e, rows in groups])
            self._check_shape(out)
            try:
                _check_finite(out, self._describe(where, chunk))
            except NonFiniteOutputError as err:
                self._blame_baseline(err, [g[0] for g in groups], "The model output", self._forward_row)
            if out.is_floating_point():
                self.output_eps = max(self.output_eps, float(torch.finfo(out.dtype).eps))
                row_scale = out.reshape(out.shape[0], -1).abs().amax(dim=1).tolist()
                for (e, _, _), scale in zip(chunk, row_scale):
                    e.output_scale = max(e.output_scale, scale)
            row_targets = tuple(e.target for e, _, _ in chunk)
            p, conf = target_scores(out, row_targets, self.owner.output_type)
            _check_finite(p, self._describe(where, chunk))
            for (e, _, key), pv, cv in zip(chunk, p.tolist(), conf.tolist()):
                e.cache[key] = (pv, cv)
                self._count(e, 1)

    def resolution(self, *curves: Tensor, example: Optional[Example] = None) -> float:
        """Score differences at or below this are rounding, not effect:
        ``8·eps·max(1, |scores|, |outputs of the example|)``.

        ``eps`` is the machine epsilon of the model's output dtype: the same input can score
        differently in its last bits depending on the batch it was evaluated in (the
        summation order of a matrix product depends on the batch size).  A difference of a
        few ulps of the largest output (a logit) moves a softmax probability by at most as
        much, hence the scale.  Differences this small are ties for the searches and zeros
        for the gain map, which makes ``perturbations_per_eval`` and the other examples of
        the batch irrelevant to the order and to the exact zeros.  Everything here is per
        example (``example``'s outputs), so that an example explained alone gets the same.
        The rule sees only what the model returns: a model that computes a small score as
        the difference of much larger internal values (a saturated log-probability returned
        with ``output_type="scalar"``, say) rounds above it, and batch sizes can then move
        its scores beyond the resolution; return the logits or probabilities instead, or
        pass ``perturbations_per_eval=1``.
        """
        own = example.output_scale if example is not None else 0.0
        scale = max([1.0, own] + [float(c.abs().max()) for c in curves if c.numel()])
        return 8.0 * self.output_eps * scale

    @staticmethod
    def _describe(where: str, chunk: List[Tuple[Example, Tensor, bytes]]) -> str:
        examples = sorted({e.index for e, _, _ in chunk})
        return f"{where} (example(s) {examples})"

    def lookup(self, e: Example, rows: Tensor, where: str) -> Tuple[Tensor, Tensor, Tensor]:
        """``p(x[S])``, ``p(x[V∖S])`` and ``conf(x[S])`` for each row (evaluates what is missing)."""
        self.evaluate([(e, torch.cat([rows, ~rows]))], where)
        return self.read(e, rows)

    @staticmethod
    def read(e: Example, rows: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """Like :meth:`lookup` for rows whose inputs are already in the cache."""
        keys = _row_keys(rows)
        ckeys = _row_keys(~rows)
        p = torch.tensor([e.cache[k][0] for k in keys], dtype=torch.float64)
        c = torch.tensor([e.cache[k][1] for k in keys], dtype=torch.float64)
        pc = torch.tensor([e.cache[k][0] for k in ckeys], dtype=torch.float64)
        return p, pc, c

    # ---------------------------------------------------------------- diversity

    def embed(self, examples: List[Example]) -> None:
        """Embeddings of the single-region inputs ``x[{i}]`` → pairwise distances per example.

        The embedding must give one finite row per input: ``ValueError`` for another
        number of rows, :class:`NonFiniteOutputError` for NaN or inf.
        """
        for e in examples:
            e.n_rounds += 1
            singles = torch.eye(e.m, dtype=torch.bool)
            chunks = []
            for start in range(0, e.m, self.batch):
                rows = singles[start : start + self.batch]
                k = rows.shape[0]
                out = as_output(self._embedding_output(e, rows), k, "embedding").detach()
                try:
                    check_finite_output(out, f"for the single-region inputs of example {e.index}", "The embedding")
                except NonFiniteOutputError as err:
                    self._blame_baseline(err, [e], "The embedding", self._embed_row)
                chunks.append(out.reshape(k, -1))
                self._count(e, k)
            e.distances = angular_distances(torch.cat(chunks).cpu())

    def _forward_row(self, e: Example, keep: bool) -> Tensor:
        return self._forward([(e, torch.full((1, e.m), keep, dtype=torch.bool))])

    def _embedding_output(self, e: Example, rows: Tensor) -> Any:
        """The embedding of the composed inputs of ``rows``: the output of ``embedding`` called on
        them, or, for an ``nn.Module`` inside ``forward_func``, its output captured by a forward
        hook (always removed) during one model call."""
        emb = self.owner.embedding
        if not isinstance(emb, nn.Module):
            with torch.inference_mode():
                return emb(*e.compose(rows))
        captured: List[Any] = []

        def hook(_module: nn.Module, _inp: Any, out: Any) -> None:
            captured.append(out[0] if isinstance(out, (tuple, list)) and out else out)

        handle = emb.register_forward_hook(hook)
        try:
            self._forward([(e, rows)])
        finally:
            handle.remove()
        if not captured:
            raise ValueError("`embedding` module was not called by `forward_func`.")
        return captured[-1]

    def _embed_row(self, e: Example, keep: bool) -> Any:
        return self._embedding_output(e, torch.full((1, e.m), keep, dtype=torch.bool))

    @staticmethod
    def _blame_baseline(err: NonFiniteOutputError, examples: List[Example], what: str, on_row: Any) -> None:
        """Re-raise ``err``, naming ``baselines`` when the unperturbed input gives a finite output
        (a fresh call) and the failing inputs hold baseline values: "on the baseline itself" when
        the baseline input alone (every region removed) fails too.  At most two more calls, only
        on this error path; a model that fails on the unperturbed input keeps ``err``."""

        def non_finite(out: Any) -> Optional[str]:
            if isinstance(out, (tuple, list)) and out:
                out = out[0]
            if isinstance(out, Tensor) and out.is_floating_point() and not bool(torch.isfinite(out).all()):
                return "NaN" if bool(torch.isnan(out).any()) else "inf"
            return None

        for e in examples:
            if non_finite(on_row(e, True)) is not None:
                continue  # the unperturbed input fails too: not the baseline's doing
            bad = non_finite(on_row(e, False))
            lo = min(float(b.double().min()) for b in e.base)
            hi = max(float(b.double().max()) for b in e.base)
            if bad is None:
                raise NonFiniteOutputError(
                    f"{err} The unperturbed input gives finite values, so the model cannot evaluate "
                    f"inputs that mix it with `baselines` (values in [{lo:.4g}, {hi:.4g}]); pass a "
                    f"baseline within the range of your data (Captum's default is 0)."
                ) from err
            dtypes = sorted({str(x.dtype) for x in e.inputs})
            raise NonFiniteOutputError(
                f"{what} contains {bad} on the baseline itself (every region removed) of example "
                f"{e.index}: `baselines` (values in [{lo:.4g}, {hi:.4g}], inputs of dtype "
                f"{', '.join(dtypes)}) is not an input the model can evaluate; pass a baseline "
                f"within the range of your data (Captum's default is 0)."
            ) from err
        raise err

    # ---------------------------------------------------------------- searches

    def cost(self, e: Example, rows: Tensor) -> int:
        """Model inputs that querying ``rows`` (``x[S]`` and ``x[V∖S]`` each) would add for ``e``."""
        keys = set(_row_keys(torch.cat([rows, ~rows])))
        return sum(1 for k in keys if k not in e.cache)

    def objective_resolution(self, e: Example, weights: ObjectiveWeights) -> float:
        """Objective differences at or below this are rounding: :meth:`resolution` of the scores
        (scaled by the full-input score), times the summed weights of the model-output terms."""
        full = torch.tensor([e.cache[_row_keys(torch.ones(1, e.m, dtype=torch.bool))[0]][0]])
        scale = abs(weights.consistency) + abs(weights.collaboration) + abs(weights.confidence)
        return self.resolution(full, example=e) * scale

    @staticmethod
    def region_sizes(e: Example) -> Tensor:
        """Share of the input elements (over all input tensors) in each region of ``e``."""
        counts = torch.zeros(e.m, dtype=torch.float64)
        for x, idx in zip(e.inputs, e.idx):
            region = torch.broadcast_to(idx, torch.broadcast_shapes(idx.shape, x.shape))
            counts += torch.bincount(region.reshape(-1).cpu(), minlength=e.m).double()
        return counts / counts.sum()

    @staticmethod
    def adjacency(e: Example) -> Tensor:
        """``m×m`` bool: regions of ``e`` that are neighbours along some axis of a mask."""
        adj = torch.zeros(e.m, e.m, dtype=torch.bool)
        for idx in e.idx:
            idx = idx.cpu()
            for d in range(1, idx.dim()):
                n = idx.shape[d]
                if n < 2:
                    continue
                a = idx.narrow(d, 0, n - 1).reshape(-1)
                b = idx.narrow(d, 1, n - 1).reshape(-1)
                cut = a != b
                adj[a[cut], b[cut]] = True
                adj[b[cut], a[cut]] = True
        return adj

    def run_searches(self, examples: List[Example], max_evaluations: Optional[int] = None) -> list:
        """Run every example's search concurrently, batching their requests together.

        Each search gets a :class:`~captum_submodular.search.SearchContext` with the
        example's budget (``max_evaluations`` counts every evaluation of the example,
        those made before the search included), its cache-aware costs, the objective's
        resolution, the region sizes and which regions touch.
        """
        weights = self.owner.weights
        strategy = self.owner.search
        gens = {}
        for e in examples:
            ctx = SearchContext(
                e.m,
                cost=lambda rows, e=e: self.cost(e, rows),  # type: ignore[misc]
                used=lambda e=e: e.n_evaluations,  # type: ignore[misc]
                max_evaluations=max_evaluations,
                resolution=self.objective_resolution(e, weights),
                region_sizes=self.region_sizes(e),
                adjacency=self.adjacency(e),
            )
            gens[e.index] = start_search(strategy, e.m, ctx)
        outcomes: Dict[int, Any] = {}
        requests: Dict[int, Tensor] = {}
        for e in examples:
            try:
                requests[e.index] = next(gens[e.index])
            except StopIteration as stop:
                outcomes[e.index] = stop.value
        by_index = {e.index: e for e in examples}
        while requests:
            batch = [(by_index[i], torch.cat([z, ~z])) for i, z in requests.items()]
            self.evaluate(batch, where="on a perturbed input")
            new_requests: Dict[int, Tensor] = {}
            for i, z in requests.items():
                e = by_index[i]
                p, pc, c = self.read(e, z)  # evaluated together with the other examples above
                div = effectiveness(z, e.distances) if e.distances is not None else None
                values = objective_values(weights, p, pc, c, div)
                try:
                    new_requests[i] = gens[i].send(values)
                except StopIteration as stop:
                    outcomes[i] = stop.value
            requests = new_requests
        return [outcomes[e.index] for e in examples]
