"""Substrates: what removed elements are replaced by (deletion) or start from (insertion).

``substrate=`` of every metric accepts ``None`` / ``"baseline"`` (the user's
``baselines`` for both curves), ``"blur"`` / ``"rise"`` (RISE: insertion starts from
``gaussian_blur(x, kernel 11, sigma 5)``, deletion uses the baselines), ``"mean"``
(per-example, per-channel mean colour for both curves) or a callable
``substrate(inputs) -> tensor(s)`` broadcastable to the inputs.
"""

from __future__ import annotations

from typing import Any, Callable, Tuple, Union

from torch import Tensor

from .._inputs import check_baselines

__all__ = ["SUBSTRATE_PRESETS", "BLUR_KERNEL_SIZE", "BLUR_SIGMA", "check_substrate", "substrate_tensors"]

#: Named substrates accepted by ``substrate=``.
SUBSTRATE_PRESETS: Tuple[str, ...] = ("baseline", "blur", "rise", "mean")
#: RISE blur parameters (kernel size, sigma).
BLUR_KERNEL_SIZE = 11
BLUR_SIGMA = 5.0


def check_substrate(substrate: Any) -> Union[str, Callable[..., Any]]:
    if substrate is None:
        return "baseline"
    if callable(substrate):
        return substrate
    if isinstance(substrate, str) and substrate in SUBSTRATE_PRESETS:
        return substrate
    raise ValueError(
        f"substrate must be None, a callable or one of the presets "
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
    substrate: Union[str, Callable[..., Any]],
    kind: str,
    inputs: Tuple[Tensor, ...],
    baselines: Tuple[Tensor, ...],
    is_tuple: bool,
) -> Tuple[Tensor, ...]:
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
