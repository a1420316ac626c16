"""Where the images of a dataset run come from: folders, lists of paths, Ray Datasets."""

from __future__ import annotations

import os
import warnings
from typing import Any, Dict, Iterable, List, Sequence, Tuple, Union

from ..data import parse_imagenet_label

__all__ = ["IMAGE_EXTENSIONS", "list_images", "items_from", "row_id", "is_ray_dataset", "parse_imagenet_label"]

#: File extensions picked up when ``images`` is a folder (case-insensitive).
IMAGE_EXTENSIONS: Tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def list_images(folder: Union[str, os.PathLike], extensions: Sequence[str] = IMAGE_EXTENSIONS) -> List[str]:
    """Image files under ``folder`` (recursive, sorted, hidden files and folders skipped),
    chosen by extension only — a corrupt file with an image extension is listed (and
    becomes a failed record); other files are ignored."""
    root = os.fspath(folder)
    if not os.path.isdir(root):
        raise ValueError(f"{root}: not a folder")
    exts = tuple(e.lower() for e in extensions)
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            if not name.startswith(".") and name.lower().endswith(exts):
                found.append(os.path.join(dirpath, name))
    return sorted(found)


def items_from(images: Any, extensions: Sequence[str]) -> List[Dict[str, Any]]:
    """Folder / file / list of paths → rows ``{"image_id", "path", "label": None}``."""
    if isinstance(images, (str, os.PathLike)):
        root = os.fspath(images)
        if os.path.isdir(root):
            paths = list_images(root, extensions)
            ids = [os.path.relpath(p, root).replace(os.sep, "/") for p in paths]
        elif os.path.exists(root):
            paths, ids = [root], [os.path.normpath(root)]
        else:
            raise ValueError(f"{root}: no such folder or file")
    else:
        try:
            paths = [os.fspath(p) for p in images]
        except TypeError:
            raise TypeError(
                f"`images` must be a folder, a list of paths or a Ray Dataset, got {type(images).__name__}"
            ) from None
        ids = [os.path.normpath(p) for p in paths]
    items, seen = [], set()
    for image_id, path in zip(ids, paths):
        if image_id in seen:
            warnings.warn(f"{path}: listed twice; explained once", stacklevel=3)
            continue
        seen.add(image_id)
        items.append({"image_id": image_id, "path": path, "label": None})
    return items


def is_ray_dataset(obj: Any) -> bool:
    mod = type(obj).__module__ or ""
    return mod.startswith("ray.data") and hasattr(obj, "map_batches")


def row_id(row: Dict[str, Any]) -> str:
    for key in ("image_id", "id", "path"):
        value = row.get(key)
        if value is not None and value != "":
            return str(value)
    raise ValueError("every row needs an 'image_id', 'id' or 'path' column")


class NotDone:
    """Ray Data filter: keep the rows whose id has no record yet."""

    def __init__(self, done: Iterable[str]) -> None:
        self.done = frozenset(done)

    def __call__(self, row: Dict[str, Any]) -> bool:
        return row_id(row) not in self.done
