import numpy as np
import pytest
import torch

from captum_submodular.regions import (
    default_mask,
    grid_mask,
    prior_guided_mask,
    relabel,
    slic_mask,
    window_grid_mask,
)


def test_grid_mask_by_count_and_by_tile():
    m = grid_mask(4, 6, grid=(2, 3))
    assert m.shape == (1, 1, 4, 6)
    assert m[0, 0].tolist() == [[0, 0, 1, 1, 2, 2], [0, 0, 1, 1, 2, 2], [3, 3, 4, 4, 5, 5], [3, 3, 4, 4, 5, 5]]
    t = grid_mask(5, 5, tile_size=2)
    assert t[0, 0, :, 4].tolist() == [2, 2, 5, 5, 8]  # truncated last column/row of tiles
    assert int(t.max()) == 8
    with pytest.raises(ValueError, match="exactly one"):
        grid_mask(4, 4)
    with pytest.raises(ValueError, match="grid"):
        grid_mask(4, 4, grid=5)


def test_window_grid_mask_matches_occlusion_tiles():
    m = window_grid_mask((3, 224, 224), (3, 15, 15))
    assert m.shape == (3, 224, 224)
    assert torch.unique(m).numel() == 15 * 15  # ceil(224 / 15) = 15 tiles per side
    assert torch.equal(m[0], m[2])  # the window spans all channels
    assert (m[:, :15, :15] == m[0, 0, 0]).all() and m[0, 0, 15] != m[0, 0, 0]
    per_channel = window_grid_mask((3, 4, 4), (1, 2, 2))
    assert torch.unique(per_channel).numel() == 12
    with pytest.raises(ValueError, match="sliding_window_shapes"):
        window_grid_mask((3, 4, 4), (2, 2))


def test_default_mask():
    assert torch.unique(default_mask((3, 224, 224))).numel() == 49
    assert torch.unique(default_mask((1, 5, 3))).numel() == 15
    assert default_mask((6,)).tolist() == [0, 1, 2, 3, 4, 5]


def test_relabel():
    assert relabel(torch.tensor([[7, 3], [3, 9]])).tolist() == [[1, 0], [0, 2]]


def test_slic_mask_regions_are_large_enough_and_contiguous_ids():
    from skimage import data

    img = torch.tensor(data.astronaut()[::4, ::4].copy()).permute(2, 0, 1).float()
    mask = slic_mask(img, n_segments=49, min_size_fraction=0.25)
    h, w = img.shape[1:]
    ids, counts = torch.unique(mask, return_counts=True)
    assert mask.shape == (1, 1, h, w)
    assert ids.tolist() == list(range(len(ids)))
    assert counts.min().item() >= int(0.25 * h * w / 49)
    assert abs(len(ids) - 49) <= 6  # SLIC's own parameter is adjusted to hit the count
    once = slic_mask(img, n_segments=49, match_count=False)
    assert torch.unique(once).numel() < len(ids)
    # numpy H×W×C input and any value range give the same segmentation
    same = slic_mask(img.permute(1, 2, 0).numpy() / 255.0 * 3 - 1, n_segments=49)
    assert torch.equal(same, mask)


def test_merge_keeps_every_pixel_assigned():
    from captum_submodular.regions import _merge_small_regions

    labels = np.zeros((6, 6), dtype=int)
    labels[:, 3:] = 1
    labels[0, 0] = 2  # one-pixel region inside region 0
    merged = _merge_small_regions(labels, min_size=3)
    assert merged[0, 0] == 0 and set(np.unique(merged)) == {0, 1}


def test_prior_guided_mask_groups_cells_by_prior():
    prior = torch.arange(100, dtype=torch.float32).reshape(10, 10)
    m = prior_guided_mask(prior, grid=10, cells_per_region=4, size=(20, 20))
    assert m.shape == (1, 1, 20, 20)
    assert torch.unique(m).numel() == 25
    # the four highest cells (96..99, bottom-right row) form region 0
    assert (m[0, 0, 18:, 12:] == 0).all()
    assert (m[0, 0, :2, :8] == 24).all()
    # cells of one region need not touch: a checkerboard prior
    checker = ((torch.arange(4)[:, None] + torch.arange(4)[None]) % 2).float()
    c = prior_guided_mask(checker, grid=4, cells_per_region=8)
    assert torch.equal(c[0, 0] == 0, checker.bool())
    faces = prior_guided_mask(torch.rand(1, 3, 56, 56), grid=28, cells_per_region=8)
    assert torch.unique(faces).numel() == 98
