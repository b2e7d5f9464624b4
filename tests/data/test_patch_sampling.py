"""Patch sampling of native-resolution plans: nnU-Net's class-balanced foreground oversampling, small cases."""

from __future__ import annotations

import numpy as np

from hlfnet.data import DataConfig
from hlfnet.data.patches import PatchDataset
from hlfnet.data.plan import Case


def _cfg(tmp_path, **kw):
    base = dict(
        format="folder",
        root=str(tmp_path),
        preprocessing="patch",
        spatial_dims=2,
        patch_size=(32, 32),
        rotate_degrees=0.0,
        scale_range=(1.0, 1.0),
        patches_per_epoch=400,
    )
    return DataConfig(**{**base, **kw})


def _patches(cases, cfg):
    ds = PatchDataset(cases, cfg, seed=3)
    return [ds[i] for i in range(len(ds))]


def test_a_small_organ_beside_a_large_one_is_drawn_as_often(tmp_path):
    # class 1 fills the top half (10 000 pixels), class 2 is 4 pixels far from it: a patch centred on class 1
    # (rows < 100) cannot reach class 2 (rows 180-181, patch half-size 16). Drawing a foreground class uniformly
    # (nnU-Net) centres half the patches on class 2; drawing a foreground voxel would do so 4 / 10 004 of the time.
    label = np.zeros((200, 200), dtype=np.int64)
    label[:50, :] = 1
    label[180:182, 180:182] = 2
    case = Case("c", np.zeros((1, 200, 200), np.float32), label, None)
    items = _patches([case], _cfg(tmp_path, num_classes=3, foreground_oversample=1.0))
    with_small = np.mean([bool((item["mask"] == 2).any()) for item in items])
    with_large = np.mean([bool((item["mask"] == 1).any()) for item in items])
    # 400 draws of p = 0.5: the binomial standard deviation is 0.025, so 0.4..0.6 is four of them
    assert 0.4 < with_small < 0.6 and 0.4 < with_large < 0.6
    assert all(item["image"].shape == (1, 32, 32) and item["mask"].shape == (1, 32, 32) for item in items)


def test_without_oversampling_patches_centre_on_background(tmp_path):
    label = np.zeros((200, 200), dtype=np.int64)
    label[180:182, 180:182] = 1
    case = Case("c", np.zeros((1, 200, 200), np.float32), label, None)
    items = _patches([case], _cfg(tmp_path, num_classes=2, foreground_oversample=0.0))
    # a 32×32 window holds the 2×2 block for about 33² of the ~200² background centres: < 5 %
    assert np.mean([bool((item["mask"] == 1).any()) for item in items]) < 0.08


def test_a_case_smaller_than_the_patch_is_padded_before_its_indices_are_taken(tmp_path):
    # 20×20 case, 32×32 patch: the one foreground pixel is at the case's corner. With oversampling 1 every patch is
    # centred on it, so every patch holds it (indices of the unpadded grid would point elsewhere on the padded one).
    label = np.zeros((20, 20), dtype=np.int64)
    label[19, 19] = 1
    image = np.zeros((1, 20, 20), np.float32)
    image[0, 19, 19] = 5.0
    case = Case("c", image, label, None)
    items = _patches([case], _cfg(tmp_path, num_classes=2, foreground_oversample=1.0, patches_per_epoch=50))
    for item in items:
        assert int((item["mask"] == 1).sum()) == 1
        assert item["image"][item["mask"] == 1].item() > 4.0  # the image pixel travels with its label


def test_each_batch_of_two_holds_one_foreground_patch_as_nnunet_samples(tmp_path):
    # nnU-Net (oversample 0.33): of a batch of 2, sample 0 lies anywhere and sample 1 is centred on foreground
    # (round(2 * 0.67) = 1 free sample); of a batch of 12, 4 are forced (round(12 * 0.67) = 8 free)
    label = np.zeros((200, 200), dtype=np.int64)
    label[180:182, 180:182] = 1
    case = Case("c", np.zeros((1, 200, 200), np.float32), label, None)
    cfg = _cfg(tmp_path, num_classes=2, foreground_oversample=1 / 3, patches_per_epoch=40)
    pair = PatchDataset([case], cfg, seed=1, batch_size=2)
    holds = [bool((pair[i]["mask"] == 1).any()) for i in range(len(pair))]
    assert all(holds[1::2])  # every batch's second patch
    assert sum(holds[0::2]) <= 3  # the free ones: ~1.3 % chance each of reaching the 2 × 2 block
    rng = np.random.default_rng(0)
    twelve = PatchDataset([case], cfg, batch_size=12)
    assert [twelve.centred_on_foreground(i, rng) for i in range(12)] == [False] * 8 + [True] * 4
    # two processes (DDP): process r takes items r, r + 2, ...; the position in its batch is index // 2
    ddp = PatchDataset([case], cfg, batch_size=2, replicas=2)
    assert [ddp.centred_on_foreground(i, rng) for i in range(8)] == [False, False, True, True] * 2
