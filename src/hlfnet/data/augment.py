"""Training augmentation (§3.1: random cropping and flipping), applied identically to image and mask.

Randomness comes from a NumPy generator seeded per item (see
:class:`hlfnet.data.datasets.SegmentationDataset`), so results are reproducible whatever the number of
DataLoader workers.

* random crop: a window whose sides are a fraction ``s ~ U(crop_scale)`` of the image (same aspect ratio), at
  a random position, resized back to the input size (image bilinear, mask nearest);
* flips: horizontal with probability ``hflip``, vertical with probability ``vflip``;
* optional: rotation by a random multiple of 90° (``rot90``, square inputs only) and brightness/contrast
  jitter of amplitude ``intensity_jitter`` (image only, clipped to [0, 1]).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from hlfnet.data.config import DataConfig

__all__ = ["AugmentParams", "augment_pair"]


@dataclass(frozen=True)
class AugmentParams:
    """The augmentation settings of a :class:`~hlfnet.data.config.DataConfig`."""

    crop_scale: tuple[float, float] = (0.8, 1.0)
    hflip: float = 0.5
    vflip: float = 0.5
    rot90: float = 0.0
    intensity_jitter: float = 0.0

    @classmethod
    def from_config(cls, cfg: DataConfig) -> AugmentParams:
        """Take the augmentation fields of ``cfg``."""
        return cls(cfg.crop_scale, cfg.hflip, cfg.vflip, cfg.rot90, cfg.intensity_jitter)


def augment_pair(
    image: torch.Tensor, mask: torch.Tensor, rng: np.random.Generator, params: AugmentParams
) -> tuple[torch.Tensor, torch.Tensor]:
    """Augment one sample.

    Args:
        image: ``float32`` ``(C, H, W)`` in [0, 1].
        mask: ``int64`` ``(1, H, W)``.
        rng: Generator of this item.
        params: Settings.

    Returns:
        ``(image, mask)`` of the same shapes and dtypes.
    """
    height, width = image.shape[-2:]
    # Draw every random number in a fixed order so that one setting never shifts the others' draws.
    scale = rng.uniform(*params.crop_scale)
    top_frac, left_frac = rng.random(), rng.random()
    do_h, do_v = rng.random() < params.hflip, rng.random() < params.vflip
    do_rot, k = rng.random() < params.rot90, int(rng.integers(1, 4))
    brightness, contrast = (
        rng.uniform(-1, 1) * params.intensity_jitter,
        rng.uniform(-1, 1) * params.intensity_jitter,
    )
    crop_h, crop_w = max(1, round(height * scale)), max(1, round(width * scale))
    if (crop_h, crop_w) != (height, width):
        top, left = int(top_frac * (height - crop_h + 1)), int(left_frac * (width - crop_w + 1))
        image = image[:, top : top + crop_h, left : left + crop_w]
        mask = mask[:, top : top + crop_h, left : left + crop_w]
        image = F.interpolate(image[None], size=(height, width), mode="bilinear", align_corners=False)[0]
        mask = F.interpolate(mask[None].float(), size=(height, width), mode="nearest-exact")[0].long()
    dims = [d for d, flag in ((-1, do_h), (-2, do_v)) if flag]
    if dims:
        image, mask = image.flip(dims), mask.flip(dims)
    if do_rot:
        image, mask = torch.rot90(image, k, (-2, -1)), torch.rot90(mask, k, (-2, -1))
    if params.intensity_jitter > 0:
        image = ((image - 0.5) * (1.0 + contrast) + 0.5 + brightness).clamp_(0.0, 1.0)
    return image.contiguous(), mask.contiguous()
