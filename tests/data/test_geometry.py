"""Canonical orientation, resampling and the way back: shapes, spacings and orientation preserved."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import torch

from hlfnet.data.geometry import (
    Geometry,
    from_canonical,
    resample_image,
    resampled_shape,
    restore,
    to_canonical,
    voxel_spacing,
)

# stored axes -> world: RAS (identity), LAS (x flipped), and a permuted PSR-like affine (y, z, x stored order)
AFFINES = {
    "RAS": np.diag([2.0, 3.0, 4.0, 1.0]),
    "LAS": np.diag([-2.0, 3.0, 4.0, 1.0]),
    "ASL": np.array([[0, 0, -4.0, 0], [3.0, 0, 0, 0], [0, 2.0, 0, 0], [0, 0, 0, 1]]),
}


@pytest.mark.parametrize("name", list(AFFINES))
def test_canonical_round_trip_is_exact(name):
    affine = AFFINES[name]
    data = np.arange(5 * 6 * 7).reshape(5, 6, 7)
    canonical, ornt, spacing = to_canonical(data, affine)
    assert nib.orientations.aff2axcodes(affine) == tuple(name)
    np.testing.assert_array_equal(from_canonical(canonical, ornt), data)
    # the canonical array is in RAS: the voxel at stored index i sits at the world point affine @ i, and
    # world x grows along canonical axis 0 (checked on the corner voxel of largest x)
    world = (affine[:3, :3] @ np.indices(data.shape).reshape(3, -1)).reshape(3, *data.shape)
    canonical_world_x = to_canonical(world[0], affine)[0]
    assert np.all(np.diff(canonical_world_x, axis=0) > 0)
    # spacing along the canonical axes: x, y, z sizes whatever the stored order
    sizes = {"RAS": (2.0, 3.0, 4.0), "LAS": (2.0, 3.0, 4.0), "ASL": (4.0, 3.0, 2.0)}[name]
    assert spacing == pytest.approx(sizes)


def test_voxel_spacing_is_the_column_norms():
    assert voxel_spacing(AFFINES["ASL"]) == pytest.approx((3.0, 2.0, 4.0))


def test_resampled_shape_by_hand():
    assert resampled_shape((100, 50, 20), (1.0, 2.0, 5.0), (2.0, 2.0, 2.0)) == (50, 50, 50)
    assert resampled_shape((7, 3), (1.0, 1.0), None) == (7, 3)
    assert resampled_shape((3,), (0.1,), (10.0,)) == (1,)  # never 0


@pytest.mark.parametrize("name", list(AFFINES))
def test_restore_brings_network_grid_probabilities_back_to_the_stored_grid(name):
    affine = AFFINES[name]
    stored = np.zeros((9, 8, 7), dtype=np.uint8)
    stored[2:6, 3:7, 1:4] = 1
    canonical, ornt, spacing = to_canonical(stored, affine)
    target = (3.0, 3.0, 3.0)
    size = resampled_shape(canonical.shape, spacing, target)
    # one-hot probabilities of the labels, resampled to the network grid (linear), then restored
    onehot = np.stack([1.0 - canonical, canonical]).astype(np.float32)
    network = resample_image(onehot, size)
    geometry = Geometry(ornt, stored.shape, canonical.shape, spacing, target, size)
    labels, foreground = restore(torch.from_numpy(network), geometry, lambda p: p.argmax(0))
    assert labels.shape == stored.shape and foreground.shape == stored.shape
    assert labels.dtype == np.uint8
    # the interior of the box survives the down- and up-sampling; far corners stay background
    assert labels[3:5, 4:6, 2].all() and labels[-1, 0, -1] == 0
    assert np.abs(labels.astype(int) - stored).sum() <= 0.5 * stored.sum()


def test_restore_without_resampling_is_the_argmax():
    probabilities = torch.tensor([[[0.2, 0.9], [0.6, 0.1]], [[0.8, 0.1], [0.4, 0.9]]])
    identity = np.array([[0, 1], [1, 1]], dtype=float)
    geometry = Geometry(identity, (2, 2), (2, 2), (1.0, 1.0), None, (2, 2))
    labels, foreground = restore(probabilities, geometry, lambda p: p.argmax(0))
    assert labels.tolist() == [[1, 0], [0, 1]]
    np.testing.assert_allclose(foreground, [[0.8, 0.1], [0.4, 0.9]], atol=1e-6)  # 1 - p(background)


def test_slab_wise_restore_equals_interpolate():
    """grid_sample per slab is the same mapping as interpolate(..., align_corners=False) on the whole."""
    source = torch.rand(2, 5, 4, 3, generator=torch.Generator().manual_seed(0))
    geometry = Geometry(
        np.array([[0, 1], [1, 1], [2, 1]], dtype=float),
        (11, 9, 7),
        (11, 9, 7),
        (1.0,) * 3,
        (2.0,) * 3,
        (5, 4, 3),
    )
    _, foreground = restore(source, geometry, lambda p: p.argmax(0), slab=4)
    expected = torch.nn.functional.interpolate(
        source[None], size=(11, 9, 7), mode="trilinear", align_corners=False
    )
    np.testing.assert_allclose(foreground, 1.0 - expected[0, 0].numpy(), atol=1e-5)
