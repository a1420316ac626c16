"""Substrates: what removed elements are replaced by (deletion) or start from (insertion).

``substrate=`` of every metric accepts ``None`` / ``"baseline"`` (the user's
``baselines`` for both curves), ``"blur"`` / ``"rise"`` (RISE: insertion starts from
``gaussian_blur(x, kernel 11, sigma 5)``, deletion uses the baselines), ``"mean"``
(per-example, per-channel mean colour for both curves), ``"road"`` or a
:class:`RoadSubstrate` (ROAD's noisy linear imputation of every element not shown:
:func:`captum_submodular.imputation.road_impute`), or a callable
``substrate(inputs) -> tensor(s)`` broadcastable to the inputs.

The fixed substrates are one tensor per input; ROAD's depends on what is removed at each
step, so it is composed step by step (:meth:`RoadSubstrate.compose`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence, Tuple, Union

import torch
from torch import Tensor

from .._inputs import check_baselines

__all__ = [
    "SUBSTRATE_PRESETS",
    "BLUR_KERNEL_SIZE",
    "BLUR_SIGMA",
    "RoadSubstrate",
    "check_substrate",
    "substrate_tensors",
]

#: Named substrates accepted by ``substrate=``.
SUBSTRATE_PRESETS: Tuple[str, ...] = ("baseline", "blur", "rise", "mean", "road")


@dataclass(frozen=True)
class RoadSubstrate:
    """ROAD's noisy linear imputation as a metric substrate (``substrate="road"`` is the default one).

    At every step, the elements that are not shown (the removed ones of a deletion
    curve, the not-yet-inserted ones of an insertion curve) are imputed from the shown
    ones by :func:`captum_submodular.imputation.road_impute` (each the weighted mean of
    its 8 neighbours, edge weight 1/6, diagonal 1/12), plus Gaussian noise of standard
    deviation ``noise_std`` in the model's input space.  With nothing shown (the start of
    an insertion curve) the image is the baselines.

    The noise of step ``k`` of an example is drawn from a CPU generator seeded with
    ``seed``, ``k`` and a checksum (CRC-32) of the example's values alone, so a curve does
    not depend on the batching (``perturbations_per_eval``), on the example's position or
    on the other examples of the batch, nor on torch's global RNG; ``noise_std=0`` is
    deterministic.  Image inputs only (``N×C×H×W``).
    """

    noise_std: float = 0.01
    seed: int = 0
    tol: float = 1e-4
    max_iter: int = 50

    def __post_init__(self) -> None:
        if not (isinstance(self.noise_std, (int, float)) and self.noise_std >= 0):
            raise ValueError(f"RoadSubstrate: noise_std must be a number ≥ 0, got {self.noise_std!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"RoadSubstrate: seed must be an int ≥ 0, got {self.seed!r}")

    def check(self, inputs: Tuple[Tensor, ...]) -> None:
        for x in inputs:
            if x.dim() != 4 or not x.is_floating_point():
                raise ValueError(
                    f"substrate='road' needs floating-point image inputs N x C x H x W; got {tuple(x.shape)} {x.dtype}"
                )

    @staticmethod
    def example_keys(x: Tensor) -> list:
        """A checksum of each example's values (the noise seeds' per-example part)."""
        import zlib

        flat = x.detach().to("cpu", torch.float64).reshape(x.shape[0], -1).numpy()
        return [zlib.crc32(row.tobytes()) for row in flat]

    def compose(self, x: Tensor, shown: Tensor, fill: Tensor, keys: Sequence[int], steps: Sequence[int]) -> Tensor:
        """Rows of ``x`` (``B×C×H×W``) with the elements outside ``shown`` (``B×1×H×W``) imputed.

        ``keys`` are the rows' :meth:`example_keys` and ``steps`` their step indices.
        """
        from ..imputation import road_impute

        removed = ~shown
        out = road_impute(x, removed, noise_std=0.0, fill=fill, tol=self.tol, max_iter=self.max_iter)
        if self.noise_std > 0:
            noise = torch.stack(
                [
                    torch.randn(
                        tuple(x.shape[1:]),
                        dtype=torch.float64,
                        generator=torch.Generator().manual_seed(
                            ((self.seed * 1_000_003 + int(k)) * 4_294_967_311 + int(key)) % 2**63
                        ),
                    )
                    for key, k in zip(keys, steps)
                ]
            ).to(device=x.device, dtype=out.dtype)
            out = torch.where(removed, out + self.noise_std * noise, out)
        return out


#: RISE blur parameters (kernel size, sigma).
BLUR_KERNEL_SIZE = 11
BLUR_SIGMA = 5.0


def check_substrate(substrate: Any) -> Union[str, RoadSubstrate, Callable[..., Any]]:
    if substrate is None:
        return "baseline"
    if isinstance(substrate, RoadSubstrate):
        return substrate
    if isinstance(substrate, str) and substrate == "road":
        return RoadSubstrate()
    if callable(substrate):
        return substrate
    if isinstance(substrate, str) and substrate in SUBSTRATE_PRESETS:
        return substrate
    raise ValueError(
        f"substrate must be None, a callable, a RoadSubstrate or one of the presets "
        f"{list(SUBSTRATE_PRESETS)}; got {substrate!r}"
    )


def _blur(x: Tensor) -> Tensor:
    from torchvision.transforms.functional import gaussian_blur

    k, s = [BLUR_KERNEL_SIZE] * 2, [BLUR_SIGMA] * 2
    if x.dim() == 4:
        return gaussian_blur(x, k, s)
    flat = x.reshape(-1, 1, *x.shape[-2:])
    return gaussian_blur(flat, k, s).reshape(x.shape)


def substrate_tensors(
    substrate: Union[str, RoadSubstrate, Callable[..., Any]],
    kind: str,
    inputs: Tuple[Tensor, ...],
    baselines: Tuple[Tensor, ...],
    is_tuple: bool,
) -> Tuple[Tensor, ...]:
    if isinstance(substrate, RoadSubstrate):
        return baselines  # the fill of a step with nothing shown; the rest is imputed per step
    if callable(substrate):
        res = substrate(inputs if is_tuple else inputs[0])
        if isinstance(res, list):
            res = tuple(res)
        if not (isinstance(res, Tensor) or isinstance(res, tuple) and all(isinstance(r, Tensor) for r in res)):
            raise ValueError(
                f"substrate callable must return tensor(s) broadcastable to inputs; got {type(res).__name__}"
            )
        try:  # the rules of baselines: broadcastable, finite, representable in the inputs' dtype
            res_t = check_baselines(res, inputs)
        except ValueError as err:
            raise ValueError(f"substrate callable returned an unusable substrate: {err}") from None
        return tuple(r.expand_as(x) for r, x in zip(res_t, inputs))
    if substrate == "baseline" or (substrate in ("blur", "rise") and kind == "deletion"):
        return baselines
    if substrate in ("blur", "rise"):
        for x in inputs:
            if x.dim() < 4 or min(x.shape[-2:]) <= BLUR_KERNEL_SIZE // 2:
                raise ValueError(
                    f"substrate={substrate!r} needs image inputs N x C x H x W with "
                    f"H, W > {BLUR_KERNEL_SIZE // 2}; got {tuple(x.shape)}"
                )
        return tuple(_blur(x) for x in inputs)
    # "mean": per-example per-channel mean colour
    out = []
    for x in inputs:
        dims = tuple(range(2, x.dim())) if x.dim() >= 3 else (1,)
        out.append(x.mean(dim=dims, keepdim=True).expand_as(x))
    return tuple(out)
