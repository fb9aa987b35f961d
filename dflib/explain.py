"""Where does the detector look? Grad-CAM for the CNNs, attention rollout for the ViT, written by hand.

* **Grad-CAM** (Selvaraju et al. 2017): take the activations ``A`` (N, C, h, w) of the last
  spatial layer (``model.cam_layer``; for a ViT its patch tokens laid out on the grid) and the
  gradient of the target logit with respect to them; the mean gradient over space weighs each
  channel, ``cam = ReLU(sum_c w_c A_c)``, which is upsampled to the input size. Positive =
  evidence *for* the target class.
* **Attention rollout** (Abnar & Zuidema 2020, "Quantifying Attention Flow in Transformers"):
  average each block's attention over heads, add the identity for the residual connection
  (``0.5 A + 0.5 I``; rows still sum to 1), multiply the blocks together, and read the row of
  the token the model classifies from over the patches: the class token's row for
  ``pool="cls"``; for a ViT that averages its patch tokens (``pool="mean"``, like the shipped
  ``vit_face_conv_128``) the mean of the patch tokens' rows, since their average is what reaches
  the head. It says which patches that information came from; it never looks at the head, so
  it is class-agnostic.
* **Sanity checks** (Adebayo et al. 2018, "Sanity Checks for Saliency Maps"):
  :func:`randomization_test` recomputes the maps with the weights re-initialised (from the head
  backwards, or all at once) and reports the rank correlation with the trained model's maps; a
  map that barely changes is not explaining what the model learnt. :func:`cross_image_similarity`
  and :func:`border_mass` say whether the maps follow the image at all.

Both return heatmaps ``(N, H, W)`` in [0, 1] at the input size; :func:`explain` picks the
method for the model, :func:`overlay` paints a heatmap onto an image for saving.

    >>> heat = explain(model, x)                    # x: normalised (N, 3, H, W), as the model eats it
    >>> png = overlay(denormalize(x[0]), heat[0])   # H x W x 3 uint8
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def _batch(images: torch.Tensor) -> torch.Tensor:
    if not isinstance(images, torch.Tensor) or images.ndim not in (3, 4):
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(
            f"images must be a normalised (N, 3, H, W) or (3, H, W) tensor, got {shape}; "
            "prepare them with dflib.data.eval_transform"
        )
    return images.unsqueeze(0) if images.ndim == 3 else images


def _device(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def _normalize(maps: torch.Tensor, subtract_min: bool) -> torch.Tensor:
    """Scale each map to [0, 1] (by its max, or min-max); an all-zero map stays zero."""
    flat = maps.flatten(1)
    if subtract_min:
        flat = flat - flat.min(dim=1, keepdim=True).values
    top = flat.max(dim=1, keepdim=True).values
    flat = torch.where(top > 0, flat / top.clamp_min(1e-12), torch.zeros_like(flat))
    return flat.reshape(maps.shape)


def _upsample(maps: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    return F.interpolate(maps.unsqueeze(1), size=tuple(size), mode="bilinear", align_corners=False).squeeze(1)


def _target_score(logits: torch.Tensor, target: str | int | None) -> torch.Tensor:
    """The per-image scalar to explain: the fake logit (binary), its negative for "real", or a class logit."""
    if logits.ndim == 1 or logits.shape[-1] == 1:
        z = logits.reshape(-1)
        if target in ("fake", None, 1):
            return z
        if target in ("real", 0):
            return -z
        raise ValueError(f"target must be 'fake' or 'real' for a binary detector, got {target!r}")
    if target is None:
        return logits.gather(1, logits.argmax(1, keepdim=True)).squeeze(1)
    if not isinstance(target, int) or not 0 <= target < logits.shape[1]:
        raise ValueError(f"target must be a class index in [0, {logits.shape[1]}) or None (top class), got {target!r}")
    return logits[:, target]


def _tokens_to_map(act: torch.Tensor, model: nn.Module, size: Sequence[int]) -> torch.Tensor:
    """Transformer tokens (N, L, D) -> (N, D, gh, gw), dropping the class token(s)."""
    prefix = int(getattr(model, "num_prefix_tokens", 1))
    patches = act[:, prefix:]
    n, length, d = patches.shape
    gh = max(1, round(math.sqrt(length * size[0] / size[1])))
    if length % gh:
        raise ValueError(f"cannot arrange {length} patch tokens into a grid for a {size[0]}x{size[1]} input")
    return patches.transpose(1, 2).reshape(n, d, gh, length // gh)


def grad_cam(
    model: nn.Module, images: torch.Tensor, *, target: str | int | None = "fake", layer: nn.Module | None = None
) -> torch.Tensor:
    """Grad-CAM heatmaps ``(N, H, W)`` in [0, 1] (float32, CPU) for ``images`` as the model eats them.

    ``layer`` defaults to ``model.cam_layer`` (every dflib Detector has one; for a ViT the
    LayerNorm in front of the last block's attention, whose ``(N, T, D)`` tokens are laid out on
    the patch grid). ``target`` is
    ``"fake"`` (evidence for fake, the default) or ``"real"`` for a binary detector, a class
    index (or None = top class) otherwise. Works whatever ``requires_grad`` the weights have and
    inside ``torch.inference_mode()``; the model's train/eval mode is restored.
    """
    x0 = _batch(images)
    if layer is None:
        layer = getattr(model, "cam_layer", None)
    if not isinstance(layer, nn.Module):
        raise ValueError(f"{type(model).__name__} has no cam_layer; pass layer= (the last block with spatial output)")
    store: dict[str, torch.Tensor] = {}

    def keep(_module: nn.Module, _inputs: object, output: object) -> torch.Tensor:
        if not isinstance(output, torch.Tensor):
            raise ValueError(f"Grad-CAM layer {type(_module).__name__} returns {type(output).__name__}, not a tensor")
        store["act"] = output
        return output.clone()  # downstream in-place ops (ReLU(inplace=True)) then cannot touch `act`

    was_training = model.training
    handle = layer.register_forward_hook(keep)
    try:
        model.eval()
        with torch.inference_mode(False), torch.enable_grad():
            x = x0.detach().clone().to(_device(model)).requires_grad_(True)
            score = _target_score(model(x), target)
            act = store["act"]
            (grad,) = torch.autograd.grad(score.sum(), act)
    finally:
        handle.remove()
        model.train(was_training)
    act, grad = act.detach().float(), grad.detach().float()
    if act.ndim == 3:  # ViT tokens
        act, grad = _tokens_to_map(act, model, x0.shape[-2:]), _tokens_to_map(grad, model, x0.shape[-2:])
    if act.ndim != 4:
        raise ValueError(f"Grad-CAM needs a (N, C, h, w) feature map, the layer gave shape {tuple(act.shape)}")
    weights = grad.mean(dim=(2, 3), keepdim=True)  # one weight per channel: the global-average gradient
    cam = F.relu((weights * act).sum(dim=1))
    return _normalize(_upsample(cam, x0.shape[-2:]), subtract_min=False).cpu()


def rollout(
    attentions: Sequence[torch.Tensor], *, num_prefix: int = 1, head_fusion: str = "mean", query: str = "cls"
) -> torch.Tensor:
    """Attention rollout of per-block maps ``(N, heads, L, L)`` (first block first).

    Returns the rolled-out attention to each patch token, ``(N, L - num_prefix)``, of the token(s)
    the model classifies from: the class token (``query="cls"``) or, for a ViT that averages its
    patch tokens (``pool="mean"``), the mean over the patch tokens (``query="mean"``).
    Un-normalised; the rows of the rolled-out matrix sum to 1.
    """
    if query not in ("cls", "mean"):
        raise ValueError(f"query must be 'cls' or 'mean', got {query!r}")
    if not attentions:
        raise ValueError("attention rollout needs at least one attention map")
    fuse = {"mean": lambda a: a.mean(1), "max": lambda a: a.amax(1), "min": lambda a: a.amin(1)}
    if head_fusion not in fuse:
        raise ValueError(f"head_fusion must be one of {sorted(fuse)}, got {head_fusion!r}")
    result = None
    for attn in attentions:
        if attn.ndim != 4 or attn.shape[-1] != attn.shape[-2]:
            raise ValueError(f"attention maps must be (N, heads, L, L), got {tuple(attn.shape)}")
        a = fuse[head_fusion](attn.detach().double())
        eye = torch.eye(a.shape[-1], dtype=a.dtype, device=a.device)
        a = a + eye  # the residual connection carries each token on unchanged
        a = a / a.sum(dim=-1, keepdim=True)  # renormalise rows (= 0.5 A + 0.5 I for softmax rows)
        result = a if result is None else a @ result  # later blocks act after earlier ones
    rows = result[:, 0] if query == "cls" else result[:, num_prefix:].mean(dim=1)
    return rows[:, num_prefix:].float()


def attention_rollout(model: nn.Module, images: torch.Tensor, *, head_fusion: str = "mean") -> torch.Tensor:
    """Attention-rollout heatmaps ``(N, H, W)`` in [0, 1] for a ViT (one with ``attention_maps(x)``)."""
    x0 = _batch(images)
    if not is_transformer(model):
        raise ValueError(f"{type(model).__name__} does not return attention maps; use grad_cam for CNNs")
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            maps = model.attention_maps(x0.to(_device(model)))
    finally:
        model.train(was_training)
    prefix = int(getattr(model, "num_prefix_tokens", 1))
    query = "mean" if getattr(model, "pool_type", "cls") == "mean" else "cls"
    cls = rollout(maps, num_prefix=prefix, head_fusion=head_fusion, query=query)  # (N, gh*gw)
    patch = int(getattr(model, "patch_size", 0)) or None
    h, w = x0.shape[-2:]
    gh = h // patch if patch else max(1, round(math.sqrt(cls.shape[1] * h / w)))
    grid = cls.reshape(cls.shape[0], gh, cls.shape[1] // gh)
    return _normalize(_upsample(grid, (h, w)), subtract_min=True).cpu()


def is_transformer(model: nn.Module) -> bool:
    """True for models that give per-block attention maps, ``model.attention_maps(x)`` (dflib's ViT)."""
    return callable(getattr(model, "attention_maps", None))


def explain(model: nn.Module, images: torch.Tensor, *, target: str | int | None = "fake") -> torch.Tensor:
    """Heatmaps ``(N, H, W)`` in [0, 1]: attention rollout for a ViT, Grad-CAM for a CNN.

    ``images`` are the model's normalised input ``(N, 3, H, W)`` (or one ``(3, H, W)`` image).
    ``target`` matters for Grad-CAM only (rollout is class-agnostic).
    """
    if is_transformer(model):
        return attention_rollout(model, images)
    return grad_cam(model, images, target=target)


def _image_hwc_uint8(image: object) -> np.ndarray:
    if isinstance(image, torch.Tensor):
        t = image.detach().cpu()
        if t.ndim == 4 and t.shape[0] == 1:
            t = t[0]
        if t.ndim == 3 and t.shape[0] in (1, 3):
            t = t.permute(1, 2, 0)
        arr = t.numpy()
    else:
        arr = np.asarray(image)  # PIL or array
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[-1] not in (1, 3, 4):
        raise ValueError(f"image must be H x W x 3 (array / PIL) or 3 x H x W (tensor), got shape {arr.shape}")
    arr = arr[..., :3]
    if arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, axis=-1)
    if arr.dtype == np.uint8:
        return arr
    arr = arr.astype(np.float64)
    if arr.min() < -1e-3 or arr.max() > 1 + 1e-3:
        raise ValueError(
            "a float image must hold values in [0, 1]; undo the normalisation first "
            "(dflib.data.denormalize) or pass the uint8 image"
        )
    return np.clip(arr * 255 + 0.5, 0, 255).astype(np.uint8)


def overlay(image: object, heatmap: torch.Tensor | np.ndarray, alpha: float = 0.45, cmap: str = "jet") -> np.ndarray:
    """Blend a heatmap (values in [0, 1], any size) onto an image: ``H x W x 3`` uint8 for saving.

    ``image`` is a PIL image, an ``H x W x 3`` array or a ``3 x H x W`` tensor, uint8 or float in
    [0, 1] (not normalised). The heatmap is resized (bilinear) to the image.
    """
    import matplotlib

    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha must be in [0, 1] (heatmap opacity), got {alpha!r}")
    img = _image_hwc_uint8(image)
    heat = torch.as_tensor(
        np.asarray(heatmap.detach().cpu() if isinstance(heatmap, torch.Tensor) else heatmap), dtype=torch.float32
    ).squeeze()
    if heat.ndim != 2:
        raise ValueError(f"heatmap must be 2-D (H, W), got shape {tuple(heat.shape)}")
    if heat.shape != img.shape[:2]:
        heat = _upsample(heat[None], img.shape[:2])[0]
    colors = matplotlib.colormaps[cmap](heat.clamp(0, 1).numpy())[..., :3]
    out = (1 - alpha) * img.astype(np.float64) + alpha * 255 * colors
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


# --- Sanity checks (Adebayo et al. 2018) --------------------------------------------------


def randomization_stages(model: nn.Module) -> list[str]:
    """The layers the cascading randomisation test re-initialises, **head first**.

    The model's top-level children that hold parameters, from the output back to the input; a
    transformer's stack of encoder blocks (an ``nn.Sequential``) counts block by block.
    """
    names = []
    for name, child in model.named_children():
        if not any(True for _ in child.parameters()):
            continue
        if is_transformer(model) and isinstance(child, nn.Sequential):
            names += [f"{name}.{sub}" for sub, c in child.named_children() if any(True for _ in c.parameters())]
        else:
            names.append(name)
    if any(True for _ in model.parameters(recurse=False)):
        names.insert(0, "")  # parameters owned by the model itself (e.g. a class token), with the input side
    return names[::-1]


def randomize_layers(model: nn.Module, stages: Sequence[str], *, seed: int = 0) -> nn.Module:
    """A deep copy of ``model`` whose ``stages`` (names from :func:`randomization_stages`) are re-initialised.

    Each layer gets its default initialisation again (``reset_parameters``); a bare parameter
    (a class token, a position embedding) is redrawn from N(0, 0.02^2). The original is untouched.
    """
    copy_ = copy.deepcopy(model)
    gen = torch.Generator().manual_seed(seed)
    modules = dict(copy_.named_modules())
    for stage in stages:
        if stage not in modules:
            raise ValueError(
                f"{type(model).__name__} has no layer {stage!r}; choose from {randomization_stages(model)}"
            )
        torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=gen)))  # reset_parameters draws globally
        for module in modules[stage].modules() if stage else [copy_]:
            if hasattr(module, "reset_parameters") and stage:
                module.reset_parameters()
            else:
                for p in module.parameters(recurse=False):
                    with torch.no_grad():
                        p.normal_(0.0, 0.02, generator=gen)
    return copy_


def _spearman_rows(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    """Spearman rank correlation of each pair of maps (N, H, W); NaN where a map is constant."""
    from scipy.stats import rankdata

    ra = rankdata(a.flatten(1).double().numpy(), axis=1)
    rb = rankdata(b.flatten(1).double().numpy(), axis=1)
    ra, rb = ra - ra.mean(1, keepdims=True), rb - rb.mean(1, keepdims=True)
    denom = np.sqrt((ra**2).sum(1) * (rb**2).sum(1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, (ra * rb).sum(1) / denom, np.nan)


def randomization_test(
    model: nn.Module,
    images: torch.Tensor,
    *,
    cascade: bool = True,
    target: str | int | None = "fake",
    seed: int = 0,
    stages: Sequence[str] | None = None,
):
    """The model-randomisation sanity check of Adebayo et al. (2018), "Sanity Checks for Saliency Maps".

    An explanation that explains the *model* must change when the model's weights are replaced
    by random ones. This computes :func:`explain`'s maps for ``images`` with the trained model
    and with copies whose weights are re-initialised: ``cascade=True`` from the head backwards,
    one more stage each step (:func:`randomization_stages`), ``cascade=False`` all at once.
    Returns a DataFrame with one row per step and image: ``step`` (1, 2, ...), ``randomized``
    (the stage re-initialised last, or ``"all layers"``), ``image`` (index) and ``spearman``
    (rank correlation between the trained and the randomised map; NaN when a map is constant,
    e.g. a Grad-CAM with no positive evidence). Correlations near 1 mean the map barely
    depends on those weights: it is then not explaining what the model learnt.
    """
    import pandas as pd

    x = _batch(images)
    order = list(stages) if stages is not None else randomization_stages(model)
    if not order:
        raise ValueError(f"{type(model).__name__} has no parameters to randomise")
    trained = explain(model, x, target=target)
    plan = [(order[: k + 1], order[k]) for k in range(len(order))] if cascade else [(order, "all layers")]
    rows = []
    for step, (randomized, label) in enumerate(plan, start=1):
        maps = explain(randomize_layers(model, randomized, seed=seed), x, target=target)
        for i, rho in enumerate(_spearman_rows(trained, maps)):
            rows.append({"step": step, "randomized": label, "image": i, "spearman": float(rho)})
    return pd.DataFrame(rows)


def cross_image_similarity(maps: torch.Tensor) -> float:
    """Mean Spearman correlation between the maps of *different* images ``(N, H, W)``, N >= 2.

    Near 1: the map is nearly the same whatever the image (a fixed hotspot), so it says more
    about the model than about the image in front of it.
    """
    maps = torch.as_tensor(maps)
    if maps.ndim != 3 or maps.shape[0] < 2:
        raise ValueError(f"cross_image_similarity needs (N, H, W) maps with N >= 2, got {tuple(maps.shape)}")
    i, j = np.triu_indices(maps.shape[0], k=1)
    return float(np.nanmean(_spearman_rows(maps[i], maps[j])))


def border_mass(maps: torch.Tensor, frac: float = 0.125) -> np.ndarray:
    """Share of each map's total (N, H, W) in the outer band ``frac`` of the height/width wide.

    The band is ``1 - (1 - 2 frac)^2`` of the area (44 % for the default): a map spread evenly
    puts that much there; far more means the evidence sits at the border, away from the face.
    """
    if not 0 < frac < 0.5:
        raise ValueError(f"frac must be in (0, 0.5), got {frac!r}")
    maps = torch.as_tensor(maps).double()
    h, w = maps.shape[-2:]
    dh, dw = max(1, round(h * frac)), max(1, round(w * frac))
    inner = maps[..., dh : h - dh, dw : w - dw].sum(dim=(-2, -1))
    total = maps.sum(dim=(-2, -1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total.numpy() > 0, (1 - inner / total.clamp_min(1e-12)).numpy(), np.nan)
