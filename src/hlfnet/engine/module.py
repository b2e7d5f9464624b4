"""The training agent: a LightningModule around any registered network, and the data module that feeds it.

The network stays a plain ``nn.Module`` (PyMIC's separation of agent and network); this module adds the loss
(:func:`hlfnet.engine.loss.training_loss`; the paper's: MONAI ``DiceLoss``), the optimiser and the schedule
(:mod:`hlfnet.engine.optim`; the paper's: Adam and StepLR) and validation with the ISIC per-image metrics of
:func:`hlfnet.evaluation.metrics.scores_from_logits`, averaged over the whole validation set.
"""

from __future__ import annotations

import logging
from typing import Any

import lightning as L
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset

from hlfnet.data import DataConfig, build_dataset
from hlfnet.engine.loss import dice_loss, training_loss
from hlfnet.engine.optim import build_optimizer, build_schedule
from hlfnet.evaluation.metrics import scores_from_logits

__all__ = ["SegmentationModule", "SegmentationDataModule", "EpochSampler", "EPOCH_COLUMNS"]

log = logging.getLogger(__name__)

#: Columns of ``metrics.csv``, one row per epoch (``epoch`` counts from 0, as Lightning does).
EPOCH_COLUMNS = ("epoch", "lr", "train_loss", "val_loss", "val_dice", "val_jaccard", "val_accuracy")
_VAL_METRICS = ("dice", "jaccard", "accuracy")


class SegmentationModule(L.LightningModule):
    """Trains a segmentation network with the paper's recipe.

    Args:
        model: a network returning logits ``(B, K, H, W)`` (built by :func:`hlfnet.create_model`).
        lr: initial learning rate.
        weight_decay: the optimiser's weight decay.
        lr_step_epochs: StepLR step size in epochs (``schedule="step"``).
        lr_gamma: StepLR factor (``schedule="step"``).
        channels_last: hold weights and batches in channels-last memory format (``channels_last_3d`` for 3D).
        window: ``None`` validates with one forward pass per image (the resize plan); a patch size validates
            whole cases by sliding windows of that size (MONAI ``sliding_window_inference``, Gaussian
            weighting, overlap 0.5), as prediction does.
        loss: the training loss, ``"dice"`` (the paper's), ``"dice_ce"``, ``"ce"``, ``"focal"`` or ``"auto"``
            (:func:`hlfnet.engine.loss.training_loss`); validation reports the Dice loss whatever it is.
        optimizer: ``"adam"`` (the paper's), ``"adamw"`` or ``"sgd"`` (:func:`hlfnet.engine.optim.build_optimizer`).
        momentum: SGD's Nesterov momentum.
        schedule: ``"step"`` (the paper's), ``"poly"`` or ``"constant"`` (:func:`hlfnet.engine.optim.build_schedule`).
        max_epochs: the run's length, which the poly schedule decays over.

    After each validation epoch :attr:`epoch_row` holds that epoch's row of ``metrics.csv``
    (see :data:`EPOCH_COLUMNS`), computed over all processes.
    """

    def __init__(
        self,
        model: nn.Module,
        lr: float = 1e-4,
        weight_decay: float = 0.0,
        lr_step_epochs: int = 15,
        lr_gamma: float = 0.1,
        channels_last: bool = False,
        window: tuple[int, ...] | None = None,
        loss: str = "dice",
        optimizer: str = "adam",
        momentum: float = 0.99,
        schedule: str = "step",
        max_epochs: int = 45,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["model"])
        self.window = tuple(window) if window else None
        self.memory_format = (
            (torch.channels_last if getattr(model, "spatial_dims", 2) == 2 else torch.channels_last_3d)
            if channels_last
            else torch.contiguous_format
        )
        self.model = model.to(memory_format=self.memory_format)
        out_channels = int(getattr(model, "out_channels", 1))
        self.loss = training_loss(loss, out_channels)
        self.per_image_loss = dice_loss(out_channels, reduction="none")
        self.epoch_row: dict[str, float] | None = None
        self._epoch_lr = float("nan")
        self._train_sum = torch.zeros(2, dtype=torch.float64)  # loss * images, images
        self._val_sum = torch.zeros(2 + len(_VAL_METRICS), dtype=torch.float64)  # loss, metrics..., images

    def batch_image(self, batch: dict[str, Any]) -> Tensor:
        """The batch's images in the module's memory format (channels-last when asked)."""
        return batch["image"].contiguous(memory_format=self.memory_format)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, C, H, W) -> (B, K, H, W)`` logits."""
        return self.model(x)

    def _loss_target(self, mask: Tensor, logits: Tensor) -> Tensor:
        return mask.float() if logits.shape[1] == 1 else mask

    def on_train_epoch_start(self) -> None:
        self._train_sum = torch.zeros(2, dtype=torch.float64, device=self.device)
        # Lightning steps epoch schedulers after the last batch, before validation: read the epoch's rate now.
        optimizers = self.trainer.optimizers
        self._epoch_lr = float(optimizers[0].param_groups[0]["lr"]) if optimizers else float("nan")

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        image, mask = self.batch_image(batch), batch["mask"]
        logits = self.model(image)
        # The loss in float32 even under mixed precision: Dice sums over many pixels.
        loss = self.loss(logits.float(), self._loss_target(mask, logits))
        if not bool(torch.isfinite(loss.detach())):
            from hlfnet.errors import NonFiniteError

            raise NonFiniteError(
                f"the training loss became {float(loss.detach())} at epoch {self.current_epoch}, batch {batch_idx}: training "
                f"diverged (train.lr={self.hparams.get('lr', '?')}); lower train.lr or check the data. Nothing "
                "non-finite was saved as the best model"
            )
        n = image.shape[0]
        self._train_sum += torch.stack([loss.detach().double() * n, loss.new_tensor(n, dtype=torch.float64)])
        # The step value as this process sees it (no all-reduce per step); the exact epoch mean over all
        # processes is logged as train_loss_epoch after validation.
        self.log("train_loss", loss, on_step=True, on_epoch=False, prog_bar=True, batch_size=n)
        return loss

    def on_validation_epoch_start(self) -> None:
        self._val_sum = torch.zeros(2 + len(_VAL_METRICS), dtype=torch.float64, device=self.device)

    def validation_logits(self, image: Tensor) -> Tensor:
        """Logits of whole validation images: one forward pass, or sliding windows for a patch plan."""
        if self.window is None:
            return self.model(image).float()
        from monai.inferers import sliding_window_inference

        from hlfnet.models.slices import on_slices

        # a window one slice deeper than the network (a 2-D plan of volumes) slides over axial slices
        deeper = len(self.window) > getattr(self.model, "spatial_dims", 2)
        network = on_slices(self.model) if deeper else self.model
        return sliding_window_inference(
            image, self.window, sw_batch_size=2, predictor=network, overlap=0.5, mode="gaussian"
        ).float()

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        image, mask = self.batch_image(batch), batch["mask"]
        logits = self.validation_logits(image)
        losses = self.per_image_loss(logits, self._loss_target(mask, logits)).flatten(1).mean(1)
        scores = scores_from_logits(logits, mask)
        n = image.shape[0]
        self._val_sum += torch.stack(
            [
                losses.double().sum(),
                *(scores[m].to(self._val_sum.device).sum() for m in _VAL_METRICS),
                losses.new_tensor(n, dtype=torch.float64),
            ]
        )

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            return
        # Per-image sums over every process, then one division: the exact mean over the validation set,
        # whatever the sharding.
        val = self.trainer.strategy.reduce(self._val_sum.clone(), reduce_op="sum")
        train = self.trainer.strategy.reduce(self._train_sum.clone(), reduce_op="sum")
        images = float(val[-1])
        if images == 0:
            raise ValueError("the validation split is empty: nothing to select the best model on")
        metrics = {f"val_{m}": float(val[1 + i]) / images for i, m in enumerate(_VAL_METRICS)}
        row = {
            "epoch": float(self.current_epoch),
            "lr": self._epoch_lr,
            "train_loss": float(train[0] / train[1]) if float(train[1]) > 0 else float("nan"),
            "val_loss": float(val[0]) / images,
            **metrics,
        }
        self.epoch_row = row
        self.log("train_loss_epoch", row["train_loss"], sync_dist=True)
        self.log("val_loss", row["val_loss"], sync_dist=True)
        for key, value in metrics.items():
            self.log(key, value, prog_bar=key == "val_dice", sync_dist=True)
        self.log("lr", row["lr"], sync_dist=True)

    def configure_optimizers(self) -> dict[str, Any]:
        h = self.hparams
        optimizer = build_optimizer(
            h.optimizer, self.model.parameters(), lr=h.lr, weight_decay=h.weight_decay, momentum=h.momentum
        )
        scheduler = build_schedule(
            h.schedule, optimizer, max_epochs=h.max_epochs, step_epochs=h.lr_step_epochs, gamma=h.lr_gamma
        )
        if scheduler is None:
            return {"optimizer": optimizer}
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}


class EpochSampler(DistributedSampler):
    """A :class:`DistributedSampler` that also passes the epoch to the dataset (its augmentation draws from
    ``(seed, epoch, index)``), so that order and augmentation are both functions of the epoch alone."""

    def set_epoch(self, epoch: int) -> None:
        super().set_epoch(epoch)
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)


class SegmentationDataModule(L.LightningDataModule):
    """Training and validation loaders over :func:`hlfnet.data.build_dataset`.

    The training order and augmentation are functions of ``(seed, epoch)`` only: an :class:`EpochSampler` (one
    replica per process, a single replica without DDP) whose epoch Lightning sets, so a resumed run sees the
    batches an uninterrupted one sees. Workers are not persistent, so each epoch's workers get the dataset
    with its new epoch. Validation is sharded without padding (every image exactly once over all processes).

    Args:
        data: the data section.
        batch_size: images per step per process.
        num_workers: loader workers per process.
        seed: seed of the training order.
        pin_memory: pin host memory (GPU training).
    """

    def __init__(
        self,
        data: DataConfig,
        batch_size: int,
        num_workers: int = 0,
        seed: int = 0,
        pin_memory: bool = False,
    ) -> None:
        super().__init__()
        self.data = data
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.seed = seed
        self.pin_memory = pin_memory
        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is None and self.data.is_patch_plan:
            from hlfnet.data.patches import CaseDataset, PatchDataset, load_cases

            world, _ = self._world()
            self.train_set = PatchDataset(
                load_cases(self.data, "train"), self.data, seed=self.seed, batch_size=self.batch_size, replicas=world
            )
            self.val_set = CaseDataset(load_cases(self.data, "val"))
        if self.train_set is None:
            self.train_set = build_dataset(self.data, "train")
            self.val_set = build_dataset(self.data, "val", augment=False)
            log.debug("train: %d images, val: %d images", len(self.train_set), len(self.val_set))

    def _world(self) -> tuple[int, int]:
        trainer = self.trainer
        return (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)

    def _loader(self, dataset: Dataset, sampler: Any = None, batch_size: int | None = None) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=batch_size or self.batch_size,
            sampler=sampler,
            shuffle=False,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
        )

    def train_dataloader(self) -> DataLoader:
        assert self.train_set is not None
        world, rank = self._world()
        from hlfnet.data.patches import PatchDataset

        # patches are independent random draws whose place in the batch decides foreground oversampling
        # (nnU-Net's per-batch rule): their order is kept
        shuffle = not isinstance(self.train_set, PatchDataset)
        sampler = EpochSampler(self.train_set, num_replicas=world, rank=rank, shuffle=shuffle, seed=self.seed)
        return self._loader(self.train_set, sampler)

    def val_dataloader(self) -> DataLoader:
        assert self.val_set is not None
        world, rank = self._world()
        shard = self.val_set if world == 1 else Subset(self.val_set, range(rank, len(self.val_set), world))
        # whole cases of a patch plan differ in size: one per batch
        return self._loader(shard, batch_size=1 if self.data.is_patch_plan else None)
