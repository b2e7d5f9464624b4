"""Training augmentation (§3.1: random crop and flip), checked against outputs worked out by hand.

A scripted generator hands :func:`augment_pair` chosen draws (and records which it was asked for), so each
crop, flip, rotation and jitter has an expected output written down below; a real seeded generator checks the
determinism and the fixed order of the draws.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hlfnet.data import DataConfig
from hlfnet.data.augment import AugmentParams, augment_pair


class ScriptedRng:
    """Stands in for ``np.random.Generator``: ``uniform(a, b)`` returns ``a + u (b - a)`` for the next ``u``,
    ``random()`` the next value, ``integers`` the given ``k``; every call is recorded."""

    def __init__(self, uniform: list[float], random: list[float], k: int = 1) -> None:
        self._u, self._r, self._k = list(uniform), list(random), k
        self.calls: list[tuple] = []

    def uniform(self, low: float, high: float) -> float:
        self.calls.append(("uniform", low, high))
        return low + self._u.pop(0) * (high - low)

    def random(self) -> float:
        self.calls.append(("random",))
        return self._r.pop(0)

    def integers(self, low: int, high: int) -> int:
        self.calls.append(("integers", low, high))
        return self._k


def _draws(
    scale_u: float = 0.0,
    top: float = 0.0,
    left: float = 0.0,
    h: float = 0.9,
    v: float = 0.9,
    rot: float = 0.9,
    k: int = 1,
    brightness_u: float = 0.5,
    contrast_u: float = 0.5,
) -> ScriptedRng:
    return ScriptedRng([scale_u, brightness_u, contrast_u], [top, left, h, v, rot], k)


def _ramp(size: int = 4) -> torch.Tensor:
    """``(1, size, size)`` float32 with value ``size·row + column``."""
    return torch.arange(size * size, dtype=torch.float32).view(1, size, size)


NO_CROP = AugmentParams(crop_scale=(1.0, 1.0), hflip=0.0, vflip=0.0)


def test_defaults_are_the_documented_crop_and_flips_only() -> None:
    assert AugmentParams() == AugmentParams((0.8, 1.0), 0.5, 0.5, 0.0, 0.0)
    cfg = DataConfig(
        image_size=(8, 8), crop_scale=(0.6, 0.9), hflip=0.25, vflip=0.75, rot90=0.125, intensity_jitter=0.375
    )
    assert AugmentParams.from_config(cfg) == AugmentParams((0.6, 0.9), 0.25, 0.75, 0.125, 0.375)


def test_draws_come_in_a_fixed_order_from_the_settings_ranges() -> None:
    rng = _draws()
    augment_pair(_ramp(), torch.zeros(1, 4, 4, dtype=torch.int64), rng, AugmentParams((0.6, 0.9), 0.5, 0.5))
    assert rng.calls == [
        ("uniform", 0.6, 0.9),
        *[("random",)] * 5,  # crop top, crop left, horizontal flip, vertical flip, rotation
        ("integers", 1, 4),  # quarter turns: 1, 2 or 3
        ("uniform", -1, 1),  # brightness
        ("uniform", -1, 1),  # contrast
    ]


def test_half_size_crop_is_resized_back_bilinearly_and_the_mask_by_nearest_neighbour() -> None:
    """Scale 1/2 of 4×4: a 2×2 window at top = ⌊0.5·(4 - 2 + 1)⌋ = 1, left = ⌊0.9·3⌋ = 2, i.e. the values
    (6, 7; 10, 11). Bilinear 2 -> 4 without corner alignment samples the source at -1/4, 1/4, 3/4, 5/4, clamped
    to [0, 1]: weights (1, 3/4, 1/4, 0) on the first pixel, so a row (6, 7) becomes (6, 6.25, 6.75, 7) and rows
    6 and 10 become 6, 7, 9, 10. The mask's 2×2 window, each pixel repeated into a 2×2 block."""
    mask = torch.tensor([[0, 0, 0, 0], [0, 0, 1, 0], [0, 0, 1, 1], [0, 0, 0, 0]]).view(1, 4, 4)
    params = AugmentParams((0.4, 0.6), 0.0, 0.0)
    image, out_mask = augment_pair(_ramp(), mask, _draws(scale_u=0.5, top=0.5, left=0.9), params)
    rows, cols = torch.tensor([0.0, 1.0, 3.0, 4.0]), torch.tensor([0.0, 0.25, 0.75, 1.0])
    assert torch.equal(image, (6 + rows[:, None] + cols[None, :])[None])
    expected_mask = torch.tensor([[1, 1, 0, 0], [1, 1, 0, 0], [1, 1, 1, 1], [1, 1, 1, 1]]).view(1, 4, 4)
    assert torch.equal(out_mask, expected_mask) and out_mask.dtype == torch.int64


def test_three_quarter_crop_uses_nearest_exact_for_the_mask() -> None:
    """Scale 3/4 of 4×4 at (0, 0): the 3×3 window. Bilinear 3 -> 4 samples at -1/8, 5/8, 11/8, 17/8, clamped:
    a ramp (0, 1, 2) becomes (0, 0.625, 1.375, 2). Nearest-exact takes the source pixels ⌊(i + ½)·¾⌋ = 0, 1, 1, 2
    (plain nearest would take ⌊i·¾⌋ = 0, 0, 1, 2)."""
    mask = torch.tensor([[0, 1, 0, 0], [0, 0, 0, 0], [1, 1, 1, 1], [1, 1, 1, 1]]).view(1, 4, 4)
    params = AugmentParams((0.5, 1.0), 0.0, 0.0)
    image, out_mask = augment_pair(_ramp(), mask, _draws(scale_u=0.5), params)
    ramp = torch.tensor([0.0, 0.625, 1.375, 2.0])
    assert torch.allclose(image, (4 * ramp[:, None] + ramp[None, :])[None], rtol=0, atol=1e-6)
    expected = torch.tensor([[0, 1, 1, 0], [0, 0, 0, 0], [0, 0, 0, 0], [1, 1, 1, 1]]).view(1, 4, 4)
    assert torch.equal(out_mask, expected)


def test_crop_sides_are_rounded_and_at_least_one_pixel() -> None:
    # 0.7 · 4 = 2.8 -> a 3×3 window (truncating would take 2×2); at the far corner: top = left = ⌊0.99·2⌋ = 1
    image, _ = augment_pair(
        _ramp(),
        torch.zeros(1, 4, 4, dtype=torch.int64),
        _draws(0.0, 0.99, 0.99),
        AugmentParams((0.7, 0.7), 0.0, 0.0),
    )
    assert float(image[0, 0, 0]) == 5.0 and float(image[0, -1, -1]) == 15.0
    # 0.1 · 4 rounds to 0: one pixel, at top = ⌊0.5·4⌋ = 2, left = ⌊0.25·4⌋ = 1, i.e. the value 9 everywhere
    image, _ = augment_pair(
        _ramp(),
        torch.zeros(1, 4, 4, dtype=torch.int64),
        _draws(0.0, 0.5, 0.25),
        AugmentParams((0.1, 0.1), 0.0, 0.0),
    )
    assert torch.equal(image, torch.full((1, 4, 4), 9.0))


def test_full_scale_keeps_the_image_as_it_is() -> None:
    values = torch.rand(3, 5, 6)
    mask = (torch.rand(1, 5, 6) > 0.5).long()
    image, out_mask = augment_pair(values, mask, _draws(top=0.7, left=0.7), NO_CROP)
    assert torch.equal(image, values) and torch.equal(out_mask, mask)


@pytest.mark.parametrize(
    ("h", "v", "dims"), [(0.2, 0.9, [-1]), (0.9, 0.2, [-2]), (0.2, 0.2, [-1, -2]), (0.5, 0.5, [])]
)
def test_flips_with_their_probabilities(h: float, v: float, dims: list[int]) -> None:
    """hflip = vflip = 1/2: a draw below 1/2 flips (the horizontal flip reverses the width), 1/2 itself does
    not (probability exactly p)."""
    mask = torch.tensor([[1, 0, 0], [0, 0, 2]]).view(1, 2, 3)
    image = _ramp(6)[:, :2, :3]
    params = AugmentParams((1.0, 1.0), 0.5, 0.5)
    out, out_mask = augment_pair(image, mask, _draws(h=h, v=v), params)
    expected = image.flip(dims) if dims else image
    assert torch.equal(out, expected) and torch.equal(out_mask, mask.flip(dims) if dims else mask)


def test_a_probability_of_zero_never_flips_or_turns() -> None:
    out, _ = augment_pair(
        _ramp(), torch.zeros(1, 4, 4, dtype=torch.int64), _draws(h=0.0, v=0.0, rot=0.0), NO_CROP
    )
    assert torch.equal(out, _ramp())


@pytest.mark.parametrize("k", [1, 2, 3])
def test_rotation_by_quarter_turns_counter_clockwise(k: int) -> None:
    """(0 1; 2 3) turned once counter-clockwise is (1 3; 0 2), twice (3 2; 1 0), three times (2 0; 3 1)."""
    image = torch.tensor([[0.0, 1.0], [2.0, 3.0]]).view(1, 2, 2)
    turned = {1: [[1.0, 3.0], [0.0, 2.0]], 2: [[3.0, 2.0], [1.0, 0.0]], 3: [[2.0, 0.0], [3.0, 1.0]]}[k]
    params = AugmentParams((1.0, 1.0), 0.0, 0.0, rot90=0.5)
    out, mask = augment_pair(image, image.long(), _draws(rot=0.4, k=k), params)
    assert torch.equal(out, torch.tensor(turned).view(1, 2, 2)) and torch.equal(mask, out.long())
    unturned, _ = augment_pair(image, image.long(), _draws(rot=0.5, k=k), params)
    assert torch.equal(unturned, image)


def test_brightness_and_contrast_jitter_with_clipping() -> None:
    """Amplitude 0.2: draws u = 3/4 and 1/4 give brightness b = (2u - 1)·0.2 = 0.1 and contrast c = -0.1;
    x -> (x - ½)(1 + c) + ½ + b: 0.5 -> 0.6, 0.9 -> 0.96, 1 -> 1.05 clipped to 1, 0 -> 0.15. Then u = 0, 0:
    b = c = -0.2, 0.1 -> -0.4·0.8 + 0.3 = -0.02 clipped to 0. The mask is untouched."""
    image = torch.tensor([0.5, 0.9, 1.0, 0.0]).view(1, 2, 2)
    mask = torch.tensor([1, 0, 1, 0]).view(1, 2, 2)
    params = AugmentParams((1.0, 1.0), 0.0, 0.0, intensity_jitter=0.2)
    out, out_mask = augment_pair(image, mask, _draws(brightness_u=0.75, contrast_u=0.25), params)
    assert torch.allclose(out, torch.tensor([0.6, 0.96, 1.0, 0.15]).view(1, 2, 2), rtol=0, atol=1e-6)
    assert torch.equal(out_mask, mask)
    dark, _ = augment_pair(
        torch.full((1, 1, 1), 0.1), mask[:, :1, :1], _draws(brightness_u=0.0, contrast_u=0.0), params
    )
    assert float(dark) == 0.0


def test_no_jitter_leaves_every_value_bit_for_bit() -> None:
    image = torch.tensor([0.1, 0.3, 0.7, 0.9, 1e-8, 0.999999]).view(1, 2, 3)
    out, _ = augment_pair(
        image,
        torch.zeros(1, 2, 3, dtype=torch.int64),
        _draws(0.0, 0.0, 0.0, 0.9, 0.9, 0.9, 1, 1.0, 0.0),
        NO_CROP,
    )
    assert torch.equal(out, image)


def test_outputs_are_contiguous_whatever_the_input_layout() -> None:
    image = torch.rand(3, 6, 5).transpose(-1, -2)
    mask = torch.zeros(1, 6, 5, dtype=torch.int64).transpose(-1, -2)
    out, out_mask = augment_pair(image, mask, _draws(), NO_CROP)
    assert out.is_contiguous() and out_mask.is_contiguous() and torch.equal(out, image)


def test_seeded_generators_reproduce_and_draw_nine_numbers_whatever_the_settings() -> None:
    image, mask = torch.rand(4, 12, 16), (torch.rand(1, 12, 16) > 0.5).long()
    params = AugmentParams(hflip=1.0, vflip=0.0, intensity_jitter=0.1)
    first = augment_pair(image, mask, np.random.default_rng(5), params)
    again = augment_pair(image, mask, np.random.default_rng(5), params)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not torch.equal(first[0], augment_pair(image, mask, np.random.default_rng(6), params)[0])
    # switching the horizontal flip off changes only the flip: the crop and jitter draws are the same
    unflipped = augment_pair(
        image, mask, np.random.default_rng(5), AugmentParams(hflip=0.0, vflip=0.0, intensity_jitter=0.1)
    )
    assert torch.equal(unflipped[0].flip(-1), first[0]) and torch.equal(unflipped[1].flip(-1), first[1])
    # the generator moves on by the same nine draws whatever is switched on
    for settings in (params, NO_CROP):
        rng, reference = np.random.default_rng(5), np.random.default_rng(5)
        augment_pair(image, mask, rng, settings)
        (
            reference.uniform(size=1),
            reference.random(size=5),
            reference.integers(1, 4),
            reference.uniform(size=2),
        )
        assert rng.random() == reference.random()
