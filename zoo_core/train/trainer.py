"""The default trainer: AdamW, cosine schedule with warmup, AMP, early stopping, DDP and exact resume.

:meth:`DefaultTrainer.fit` builds the data splits, transforms and model, and
restores the last checkpoint when resuming. Each epoch then trains, validates
on the held-out part of Training, appends a line to ``metrics.jsonl`` and
writes the ``last`` checkpoint, plus ``best`` on a new lowest validation loss. When
training ends, the best weights are evaluated once on the Testing split and
``summary.json`` is written. Testing never influences the choice of epoch.
"""

from __future__ import annotations

import json
import logging
import math
import os
import platform
import random
import resource
import signal
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from zoo_core import __version__
from zoo_core.cache import cached_split_datasets
from zoo_core.data.classes import CLASS_NAMES
from zoo_core.data.datasets import DatasetSplits, ImageDataset
from zoo_core.evaluate.metrics import classification_report
from zoo_core.models import check_img_size, count_parameters, create_model
from zoo_core.plugins import get_registries, loaded_plugins
from zoo_core.recipe import Recipe
from zoo_core.train import checkpoint as ckpt
from zoo_core.train.distributed import (
    DistributedContext,
    all_reduce_sum,
    barrier,
    cleanup_distributed,
    setup_distributed,
)
from zoo_core.train.sampling import (
    AugmentingCollate,
    CachedUint8TrainDataset,
    EpochSampler,
    EvalDataset,
    SeededTrainDataset,
    collate_padded_uint8,
)

logger = logging.getLogger(__name__)


class Trainer(Protocol):
    """Interface of a trainer registered through ``register_trainers`` and run by ``zoo train``."""

    def __init__(self, recipe: Recipe, run_dir: Path, resume: bool = False, progress: bool = True): ...

    def fit(self) -> dict[str, Any]:
        """Train, evaluate on the test split and return the summary written to summary.json."""


class TrainingError(RuntimeError):
    """Error that stops training; the message gives the cause and the setting to change."""


class TrainingInterrupted(RuntimeError):
    """SIGINT or SIGTERM stopped the run after a checkpoint was written."""

    def __init__(self, run_dir: Path, signal_name: str):
        self.run_dir = run_dir
        super().__init__(
            f"{signal_name} received: stopped after the current step and saved a checkpoint. "
            f"Resume with: zoo train --resume {run_dir}"
        )


def capture_rng_state() -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Return the Python and NumPy states as JSON data and the torch states as tensors."""
    kind, keys, position, has_gauss, cached = np.random.get_state()
    json_state = {
        "python": [list(item) if isinstance(item, tuple) else item for item in random.getstate()],
        "numpy": [kind, keys.tolist(), int(position), int(has_gauss), float(cached)],
    }
    tensors = {"rng.torch": torch.random.get_rng_state()}
    if torch.cuda.is_available():
        for index, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{index}"] = state
    return json_state, tensors


def restore_rng_state(json_state: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
    version, internal, gauss = json_state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, position, has_gauss, cached = json_state["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), position, has_gauss, cached))
    torch.random.set_rng_state(tensors["rng.torch"])
    cuda_states = [tensors[k] for k in sorted(tensors) if k.startswith("rng.cuda.")]
    if cuda_states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda_states[: torch.cuda.device_count()])


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    # ru_maxrss is in kibibytes on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def package_versions() -> dict[str, Any]:
    import timm

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "timm": timm.__version__,
        "brain-zoo": __version__,
        "plugins": {info.name: info.version for info in loaded_plugins() if info.name != "builtins"},
    }


def hardware() -> dict[str, Any]:
    return {
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "cuda_device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def _write_json_atomic(path: Path, data: Any) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(data, indent=2))
    os.replace(temporary, path)


@dataclass
class _Run:
    """Objects that one training run builds once and every epoch uses."""

    context: DistributedContext
    splits: DatasetSplits
    policy: Any
    model: torch.nn.Module  # the bare model, whose state_dict is saved
    train_model: torch.nn.Module  # the same model, wrapped in DDP and torch.compile when they are on
    params: int
    memory_format: torch.memory_format
    train_sampler: EpochSampler
    train_loader: DataLoader
    val_loader: DataLoader
    batches_per_epoch: int
    steps_per_epoch: int
    total_steps: int
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    amp_dtype: torch.dtype | None
    mixup: Any
    extra: dict[str, Any]  # facts stored with every checkpoint


class DefaultTrainer:
    """Single-process or DDP training of one recipe into one run folder."""

    def __init__(self, recipe: Recipe, run_dir: Path, resume: bool = False, progress: bool = True):
        self.recipe = recipe
        self.run_dir = Path(run_dir)
        self.resume = resume
        self.progress = progress
        self._signal_name: str | None = None
        # With augment.backend=tensor, the batched augmentation and whether the DataLoader workers run it.
        self._tensor_augment = None
        self._augment_in_workers = False

    # ----- setup -------------------------------------------------------------------------

    def _amp(self, device: torch.device) -> tuple[torch.dtype | None, bool]:
        """Return (autocast dtype or None, whether a grad scaler is needed)."""
        mode = self.recipe.train.amp
        if mode == "off":
            return None, False
        if device.type == "cuda":
            if mode == "bf16":
                return torch.bfloat16, False
            return torch.float16, True
        if mode == "fp16":
            return torch.float16, False
        if mode == "bf16":
            return torch.bfloat16, False
        native = getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)() or getattr(
            torch.cpu, "_is_amx_tile_supported", lambda: False
        )()
        return (torch.bfloat16, False) if native else (None, False)

    def _build_data(self, context: DistributedContext) -> DatasetSplits:
        registries = get_registries()
        spec = registries.datasets.get(self.recipe.data.name)
        return spec.build(self.recipe.data, self.recipe.seed, progress=self.progress and context.is_main)

    def _image_datasets(self, splits: DatasetSplits, context: DistributedContext):
        """Return the train and validation images, read through the decoded-image cache when ``data.cache`` is set."""
        if not self.recipe.data.cache:
            return ImageDataset(splits.train), ImageDataset(splits.val)
        augment = self.recipe.augment
        # Every rank calls this; the first to take the cache's lock builds it and the others wait.
        datasets = cached_split_datasets(splits, self.recipe.data.img_size, augment.crop_pct, augment.interpolation,
                                         progress=self.progress and context.is_main)
        return datasets["train"], datasets["val"]

    def _loader(self, dataset, sampler, batch_size: int, context: DistributedContext, collate_fn=None) -> DataLoader:
        workers = self.recipe.data.num_workers
        return DataLoader(
            dataset,
            collate_fn=collate_fn,
            batch_size=batch_size,
            sampler=sampler,
            num_workers=workers,
            pin_memory=context.device.type == "cuda",
            persistent_workers=workers > 0,
            prefetch_factor=4 if workers > 0 else None,
            drop_last=False,
            # A private generator: creating an iterator would otherwise draw from the global
            # torch RNG, which a mid-epoch resume restores to a point after that draw.
            generator=torch.Generator().manual_seed(self.recipe.seed),
        )

    def _optimizer(self, model: torch.nn.Module) -> torch.optim.Optimizer:
        optim = self.recipe.optim
        decay, no_decay = [], []
        for name, parameter in model.named_parameters():
            if not parameter.requires_grad:
                continue
            # Biases, norms and 1-d tokens get no weight decay, as in timm's param_groups_weight_decay.
            (no_decay if parameter.ndim <= 1 or name.endswith(".bias") else decay).append(parameter)
        groups = [
            {"params": decay, "weight_decay": optim.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ]
        if optim.name == "sgd":
            return torch.optim.SGD(groups, lr=optim.lr, momentum=optim.momentum, nesterov=True)
        return torch.optim.AdamW(groups, lr=optim.lr, betas=tuple(optim.betas))

    def _learning_rate(self, step: int, total_steps: int, steps_per_epoch: int) -> float:
        """Return the learning rate for optimizer step ``step``: linear warmup, then cosine or constant."""
        schedule = self.recipe.schedule
        peak = self.recipe.optim.lr
        warmup_steps = int(round(schedule.warmup_epochs * steps_per_epoch))
        if step < warmup_steps:
            return schedule.warmup_lr + (peak - schedule.warmup_lr) * step / warmup_steps
        if schedule.name == "constant":
            return peak
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return schedule.min_lr + (peak - schedule.min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))

    # ----- signals ---------------------------------------------------------------------

    def _install_signal_handlers(self) -> dict:
        previous = {}

        def handler(signum, frame):
            if self._signal_name is not None:
                raise KeyboardInterrupt
            self._signal_name = signal.Signals(signum).name
            logger.warning("%s received: finishing the current step, then saving a checkpoint", self._signal_name)

        for signum in (signal.SIGINT, signal.SIGTERM):
            try:
                previous[signum] = signal.signal(signum, handler)
            except ValueError:
                # Not the main thread: signals cannot be handled here.
                pass
        return previous

    def _stop_requested(self, context: DistributedContext) -> bool:
        flag = 1.0 if self._signal_name else 0.0
        if context.is_distributed:
            flag = all_reduce_sum([flag], context)[0]
            if flag and self._signal_name is None:
                self._signal_name = "SIGTERM"
        return flag > 0

    # ----- main loop -------------------------------------------------------------------

    def fit(self) -> dict[str, Any]:
        context = setup_distributed(self.recipe.train.device)
        previous_handlers = self._install_signal_handlers()
        try:
            return self._fit(context)
        finally:
            for signum, handler in previous_handlers.items():
                signal.signal(signum, handler)
            cleanup_distributed()

    def _fit(self, context: DistributedContext) -> dict[str, Any]:
        wall_start = time.perf_counter()
        self._seed_everything(context)
        self._check_settings()
        run = self._setup(context)
        state = self._load_state(run)
        stopped_early = self._train_epochs(run, state)

        # Every rank ends with the best weights, so the trainer's model is the same everywhere.
        barrier(context)
        run.model.load_state_dict(ckpt.load_model_state(self.run_dir / "checkpoints" / "best"))
        summary = None
        if context.is_main:
            summary = self._finish(run, state, stopped_early, wall_start)
        barrier(context)
        return summary

    def _seed_everything(self, context: DistributedContext) -> None:
        seed = self.recipe.seed + context.rank
        random.seed(seed)
        np.random.seed(seed % 2**32)
        torch.manual_seed(seed)

    def _check_settings(self) -> None:
        """Fail on an unsupported input size or backend before spending time on the data."""
        recipe = self.recipe
        check_img_size(recipe.model.name, recipe.data.img_size)
        if recipe.augment.backend == "tensor" and not recipe.data.cache:
            raise TrainingError("augment.backend=tensor augments decoded images from the cache, but data.cache "
                                "is false; set data.cache=true or augment.backend=pil")

    def _setup(self, context: DistributedContext) -> _Run:
        """Build the data, augmentation policy, model, loaders and optimizer of this run."""
        recipe = self.recipe
        train_cfg = recipe.train
        splits = self._build_data(context)
        if context.is_main:
            logger.info("data: %s", json.dumps(splits.counts()))
        policy = get_registries().augmentations.get(recipe.augment.policy).build(recipe.augment, recipe.data.img_size)
        num_classes = len(splits.class_names)
        model, train_model, memory_format = self._build_model(context, num_classes)
        train_sampler, train_loader, val_loader = self._build_loaders(splits, policy, context)

        batches_per_epoch = math.ceil(train_sampler.shard_size() / train_cfg.batch_size)
        steps_per_epoch = math.ceil(batches_per_epoch / train_cfg.grad_accum_steps)
        amp_dtype, use_scaler = self._amp(context.device)
        extra = {
            "architecture": recipe.model.name,
            "num_classes": num_classes,
            "class_names": list(splits.class_names),
            "img_size": recipe.data.img_size,
            "preprocessing": policy.preprocessing(),
            "recipe": recipe.model_dump(mode="json"),
        }
        return _Run(
            context=context,
            splits=splits,
            policy=policy,
            model=model,
            train_model=train_model,
            params=count_parameters(model),
            memory_format=memory_format,
            train_sampler=train_sampler,
            train_loader=train_loader,
            val_loader=val_loader,
            batches_per_epoch=batches_per_epoch,
            steps_per_epoch=steps_per_epoch,
            total_steps=steps_per_epoch * train_cfg.epochs,
            optimizer=self._optimizer(model),
            scaler=torch.amp.GradScaler("cuda", enabled=use_scaler),
            amp_dtype=amp_dtype,
            mixup=policy.batch_transform(num_classes, train_cfg.label_smoothing),
            extra=extra,
        )

    def _build_model(self, context: DistributedContext, num_classes: int):
        """Return the bare model (whose weights are saved), the model to train and the memory format."""
        recipe = self.recipe
        train_cfg = recipe.train
        # Every rank builds the same initial weights from the same seed.
        torch.manual_seed(recipe.seed)
        model = create_model(recipe.model, num_classes=num_classes, img_size=recipe.data.img_size)
        torch.manual_seed(recipe.seed + context.rank)
        self.model = model
        model.to(context.device)
        memory_format = torch.channels_last if train_cfg.channels_last else torch.contiguous_format
        if train_cfg.channels_last:
            model.to(memory_format=torch.channels_last)
        if train_cfg.sync_bn and context.is_distributed:
            if context.device.type == "cuda":
                model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
            elif context.is_main:
                # NOTE: torch's SyncBatchNorm runs only on accelerators (checked in torch 2.14).
                logger.warning("train.sync_bn ignored: SyncBatchNorm needs CUDA, so BatchNorm "
                               "statistics stay per process on %s", context.device)
        train_model = model
        if context.is_distributed:
            device_ids = [context.device.index] if context.device.type == "cuda" else None
            train_model = torch.nn.parallel.DistributedDataParallel(model, device_ids=device_ids)
        if train_cfg.compile:
            train_model = torch.compile(train_model)
        return model, train_model, memory_format

    def _build_loaders(self, splits: DatasetSplits, policy, context: DistributedContext):
        """Return the training sampler and the training and validation DataLoaders."""
        recipe = self.recipe
        train_cfg = recipe.train
        train_images, val_images = self._image_datasets(splits, context)
        collate_fn = None
        if recipe.augment.backend == "tensor":
            train_set = CachedUint8TrainDataset(train_images)
            self._tensor_augment = self._tensor_transform(policy)
            # On the CPU the workers augment, so that work overlaps the training step.
            self._augment_in_workers = context.device.type == "cpu" and recipe.data.num_workers > 0
            if self._augment_in_workers:
                collate_fn = AugmentingCollate(self._tensor_augment)
            else:
                collate_fn = collate_padded_uint8
        else:
            train_set = SeededTrainDataset(train_images, policy.train_transform(), recipe.seed)
        val_set = EvalDataset(val_images, policy.eval_transform())
        train_sampler = EpochSampler(len(train_set), True, recipe.seed, context.rank, context.world_size, pad=True)
        val_sampler = EpochSampler(len(val_set), False, recipe.seed, context.rank, context.world_size, pad=False)
        eval_batch = train_cfg.eval_batch_size or train_cfg.batch_size
        train_loader = self._loader(train_set, train_sampler, train_cfg.batch_size, context, collate_fn)
        val_loader = self._loader(val_set, val_sampler, eval_batch, context)
        return train_sampler, train_loader, val_loader

    def _load_state(self, run: _Run) -> dict[str, Any]:
        """Return a fresh training state, or the last checkpoint's when resuming."""
        context = run.context
        state = {
            "epoch": 0,
            "batch_in_epoch": 0,
            "step": 0,
            "best_val_loss": None,
            "best_epoch": None,
            "epochs_without_improvement": 0,
            "history": [],
            "train_time_s": 0.0,
            "partial": {"loss_sum": 0.0, "correct": 0.0, "count": 0.0},
        }
        last_dir = self.run_dir / "checkpoints" / "last"
        if self.resume:
            if context.is_main:
                ckpt.remove_staging_folders(last_dir.parent)
            state = self._restore(last_dir, run.model, run.optimizer, run.scaler)
            if not context.is_main:
                state["partial"] = {"loss_sum": 0.0, "correct": 0.0, "count": 0.0}
            if context.is_main:
                logger.info("resuming %s at epoch %d, batch %d", self.run_dir, state["epoch"] + 1, state["batch_in_epoch"])
        if context.is_main:
            self._write_metrics(state["history"])
        barrier(context)
        return state

    def _train_epochs(self, run: _Run, state: dict[str, Any]) -> bool:
        """Train the remaining epochs; return True when early stopping ended training."""
        context = run.context
        train_cfg = self.recipe.train
        segment_start = time.perf_counter()
        time_before = state["train_time_s"]

        for epoch in range(state["epoch"], train_cfg.epochs):
            epoch_start = time.perf_counter()
            start_batch = state["batch_in_epoch"]
            run.train_sampler.set_epoch(epoch, start=start_batch * train_cfg.batch_size)
            run.train_model.train()
            interrupted = self._train_epoch(run, epoch, start_batch, state)
            state["train_time_s"] = time_before + time.perf_counter() - segment_start
            if interrupted:
                self._save_and_stop(run, state)

            val_loss, val_top1, val_count = self._validate(run)
            # Training time counts validation too, so elapsed_s is never below epoch_time_s.
            now = time.perf_counter()
            state["train_time_s"] = time_before + now - segment_start
            self._end_epoch(run, state, epoch, (val_loss, val_top1, val_count), now - epoch_start)

            patience = train_cfg.early_stopping_patience
            if patience is not None and state["epochs_without_improvement"] >= patience:
                if context.is_main:
                    logger.info("early stopping: no lower validation loss for %d epochs", patience)
                return True
            if self._stop_requested(context):
                barrier(context)
                raise TrainingInterrupted(self.run_dir, self._signal_name or "signal")
        return False

    def _save_and_stop(self, run: _Run, state: dict[str, Any]) -> None:
        """Write a mid-epoch checkpoint after a signal, then raise TrainingInterrupted."""
        context = run.context
        # Rank 0 keeps the global partial sums of the epoch; the other ranks resume from zero.
        partial = state["partial"]
        totals = all_reduce_sum([partial["loss_sum"], partial["correct"], partial["count"]], context)
        state["partial"] = dict(zip(("loss_sum", "correct", "count"), totals))
        if context.is_main:
            self._save(self.run_dir / "checkpoints" / "last", run.model, run.optimizer, run.scaler, state, run.extra)
        barrier(context)
        raise TrainingInterrupted(self.run_dir, self._signal_name or "signal")

    def _end_epoch(self, run: _Run, state: dict[str, Any], epoch: int, validation: tuple[float, float, int],
                   epoch_time: float) -> None:
        """Record the epoch in the history and write its metrics line and checkpoints."""
        val_loss, val_top1, val_count = validation
        partial = state["partial"]
        record = {
            "epoch": epoch + 1,
            "train_loss": partial["loss_sum"] / max(partial["count"], 1),
            "train_top1": partial["correct"] / max(partial["count"], 1),
            "val_loss": val_loss,
            "val_top1": val_top1,
            "lr": run.optimizer.param_groups[0]["lr"],
            "epoch_time_s": epoch_time,
            "elapsed_s": state["train_time_s"],
            "train_images": int(partial["count"]),
            "val_images": int(val_count),
        }
        state["history"].append(record)
        state["epoch"] = epoch + 1
        state["batch_in_epoch"] = 0
        state["partial"] = {"loss_sum": 0.0, "correct": 0.0, "count": 0.0}

        improved = state["best_val_loss"] is None or val_loss < state["best_val_loss"]
        if improved:
            state["best_val_loss"] = val_loss
            state["best_epoch"] = epoch + 1
            state["epochs_without_improvement"] = 0
        else:
            state["epochs_without_improvement"] += 1

        if run.context.is_main:
            logger.info(
                "epoch %d/%d: train_loss %.4f train_top1 %.2f%% val_loss %.4f val_top1 %.2f%% (%d val images) lr %.2e",
                epoch + 1, self.recipe.train.epochs, record["train_loss"], 100 * record["train_top1"],
                val_loss, 100 * val_top1, val_count, record["lr"],
            )
            checkpoints = self.run_dir / "checkpoints"
            if improved:
                self._save(checkpoints / "best", run.model, None, None, state, run.extra)
            self._save(checkpoints / "last", run.model, run.optimizer, run.scaler, state, run.extra)
            self._write_metrics(state["history"])
        barrier(run.context)

    def _train_epoch(self, run: _Run, epoch: int, start_batch: int, state: dict[str, Any]) -> bool:
        """Train one epoch from ``start_batch``; return True when a signal asked to stop."""
        context = run.context
        train_model = run.train_model
        optimizer = run.optimizer
        scaler = run.scaler
        mixup = run.mixup
        batches_per_epoch = run.batches_per_epoch
        amp_dtype = run.amp_dtype
        memory_format = run.memory_format
        train_cfg = self.recipe.train
        accum = train_cfg.grad_accum_steps
        partial = state["partial"]
        progress_bar = None
        iterator = run.train_loader
        if self.progress and context.is_main:
            from tqdm.auto import tqdm

            progress_bar = tqdm(run.train_loader, total=batches_per_epoch, initial=start_batch,
                                desc=f"epoch {epoch + 1}/{train_cfg.epochs}", unit="batch", leave=False, dynamic_ncols=True)
            iterator = progress_bar

        batch_index = start_batch
        optimizer.zero_grad(set_to_none=True)
        try:
            for batch in iterator:
                images, labels = self._batch_to_device(batch, context, memory_format)
                targets = labels
                if mixup is not None:
                    images, targets = mixup(images, labels)
                is_last_micro = (batch_index + 1) % accum == 0 or batch_index + 1 == batches_per_epoch
                sync = nullcontext()
                if context.is_distributed and not is_last_micro:
                    sync = train_model.no_sync()
                autocast = (
                    torch.autocast(context.device.type, dtype=amp_dtype) if amp_dtype is not None else nullcontext()
                )
                with sync:
                    with autocast:
                        logits = train_model(images)
                    logits = logits.float()
                    if mixup is not None:
                        loss = torch.sum(-targets * F.log_softmax(logits, dim=-1), dim=-1).mean()
                    else:
                        loss = F.cross_entropy(logits, targets, label_smoothing=train_cfg.label_smoothing)
                    self._check_finite(loss, epoch, batch_index, context)
                    scaler.scale(loss / accum).backward()

                count = labels.shape[0]
                partial["loss_sum"] += float(loss.detach()) * count
                partial["correct"] += float((logits.detach().argmax(dim=1) == labels).sum())
                partial["count"] += count
                batch_index += 1

                if is_last_micro:
                    lr = self._learning_rate(state["step"], run.total_steps, run.steps_per_epoch)
                    for group in optimizer.param_groups:
                        group["lr"] = lr
                    if self.recipe.optim.clip_grad_norm is not None:
                        scaler.unscale_(optimizer)
                        torch.nn.utils.clip_grad_norm_(train_model.parameters(), self.recipe.optim.clip_grad_norm)
                    scaler.step(optimizer)
                    scaler.update()
                    optimizer.zero_grad(set_to_none=True)
                    state["step"] += 1
                    state["batch_in_epoch"] = batch_index
                    if progress_bar is not None:
                        progress_bar.set_postfix(loss=f"{float(loss.detach()):.4f}", lr=f"{lr:.2e}")
                    if batch_index < batches_per_epoch and self._stop_requested(context):
                        return True
        finally:
            if progress_bar is not None:
                progress_bar.close()
        # Reduce the epoch's training sums so every rank logs the global figures.
        loss_sum, correct, count = all_reduce_sum([partial["loss_sum"], partial["correct"], partial["count"]], context)
        if context.is_distributed:
            state["partial"] = {"loss_sum": loss_sum, "correct": correct, "count": count}
        return False

    def _tensor_transform(self, policy):
        build = getattr(policy, "tensor_train_transform", None)
        if build is None:
            raise TrainingError(f"augmentation policy {self.recipe.augment.policy!r} has no batched tensor version; "
                                "set augment.backend=pil")
        return build(self.recipe.seed)

    def _batch_to_device(self, batch, context: DistributedContext, memory_format) -> tuple[torch.Tensor, torch.Tensor]:
        """Move a training batch to the device; with ``augment.backend=tensor`` augment or normalise it there."""
        labels = batch[-1].to(context.device, non_blocking=True)
        if self._tensor_augment is None:
            images = batch[0].to(context.device, non_blocking=True, memory_format=memory_format)
        elif self._augment_in_workers:
            images = self._tensor_augment.normalize(batch[0].to(context.device, non_blocking=True))
        else:
            images, sizes, keys, _ = batch
            images = self._tensor_augment(images.to(context.device, non_blocking=True), sizes, keys)
        return images.contiguous(memory_format=memory_format), labels

    def _check_finite(self, loss: torch.Tensor, epoch: int, batch_index: int, context: DistributedContext) -> None:
        finite = bool(torch.isfinite(loss.detach()))
        if context.is_distributed:
            finite = all_reduce_sum([0.0 if finite else 1.0], context)[0] == 0
        if not finite:
            raise TrainingError(
                f"non-finite training loss ({float(loss.detach())}) at epoch {epoch + 1}, batch {batch_index + 1}; "
                f"stopped without saving, so {self.run_dir / 'checkpoints'} keeps the last good checkpoint. "
                "Lower optim.lr, keep optim.clip_grad_norm set, or try train.amp=off."
            )

    @torch.no_grad()
    def _validate(self, run: _Run) -> tuple[float, float, int]:
        """Return the validation loss, top-1 and image count, reduced over all ranks."""
        context = run.context
        run.train_model.eval()
        loss_sum = correct = count = 0.0
        for images, labels in run.val_loader:
            images = images.to(context.device, memory_format=run.memory_format)
            labels = labels.to(context.device)
            autocast = nullcontext()
            if run.amp_dtype is not None:
                autocast = torch.autocast(context.device.type, dtype=run.amp_dtype)
            with autocast:
                logits = run.train_model(images)
            logits = logits.float()
            loss_sum += float(F.cross_entropy(logits, labels, reduction="sum"))
            correct += float((logits.argmax(dim=1) == labels).sum())
            count += labels.shape[0]
        loss_sum, correct, count = all_reduce_sum([loss_sum, correct, count], context)
        if count == 0:
            raise TrainingError("the validation split is empty; raise data.val_fraction or add training images")
        return loss_sum / count, correct / count, int(count)

    # ----- checkpoints -----------------------------------------------------------------

    def _save(self, folder, model, optimizer, scaler, state, extra) -> None:
        trainer_state = {**state, **extra, "class_names": extra["class_names"]}
        optimizer_tensors = None
        if optimizer is not None:
            optimizer_tensors, optimizer_meta = ckpt.flatten_optimizer_state(optimizer.state_dict())
            rng_json, rng_tensors = capture_rng_state()
            optimizer_tensors.update(rng_tensors)
            trainer_state["optimizer"] = optimizer_meta
            trainer_state["rng"] = rng_json
            trainer_state["scaler"] = scaler.state_dict() if scaler is not None and scaler.is_enabled() else None
        metadata = {
            "architecture": extra["architecture"],
            "num_classes": str(extra["num_classes"]),
            "class_names": json.dumps(extra["class_names"]),
        }
        ckpt.save_checkpoint(folder, ckpt.unwrap_state_dict(model.state_dict()), trainer_state, optimizer_tensors, metadata)

    def _restore(self, folder, model, optimizer, scaler) -> dict[str, Any]:
        trainer_state = ckpt.load_trainer_state(folder)
        if trainer_state.get("class_names") != list(CLASS_NAMES):
            raise TrainingError(f"{folder} was trained with classes {trainer_state.get('class_names')}, not {list(CLASS_NAMES)}")
        model.load_state_dict(ckpt.load_model_state(folder))
        tensors = ckpt.load_optimizer_tensors(folder)
        rng_tensors = {k: v for k, v in tensors.items() if k.startswith("rng.")}
        optimizer_tensors = {k: v for k, v in tensors.items() if not k.startswith("rng.")}
        optimizer.load_state_dict(ckpt.unflatten_optimizer_state(optimizer_tensors, trainer_state["optimizer"]))
        if trainer_state.get("scaler") and scaler.is_enabled():
            scaler.load_state_dict(trainer_state["scaler"])
        restore_rng_state(trainer_state["rng"], rng_tensors)
        keys = ("epoch", "batch_in_epoch", "step", "best_val_loss", "best_epoch", "epochs_without_improvement",
                "history", "train_time_s", "partial")
        return {key: trainer_state[key] for key in keys}

    def _write_metrics(self, history: list[dict[str, Any]]) -> None:
        path = self.run_dir / "metrics.jsonl"
        temporary = path.with_name(".metrics.jsonl.tmp")
        temporary.write_text("".join(json.dumps(record) + "\n" for record in history))
        os.replace(temporary, path)

    # ----- final evaluation ------------------------------------------------------------

    @torch.no_grad()
    def _predict(self, model, samples, transform, context) -> tuple[np.ndarray, np.ndarray]:
        dataset = EvalDataset(ImageDataset(samples), transform)
        sampler = EpochSampler(len(dataset), False, 0, pad=False)
        loader = self._loader(dataset, sampler, self.recipe.train.eval_batch_size or self.recipe.train.batch_size,
                              DistributedContext(device=context.device))
        model.eval()
        labels, probs = [], []
        for images, batch_labels in loader:
            logits = model(images.to(context.device)).float()
            probs.append(torch.softmax(logits, dim=1).cpu().numpy())
            labels.append(batch_labels.numpy())
        return np.concatenate(labels), np.concatenate(probs)

    def _finish(self, run: _Run, state: dict[str, Any], stopped_early: bool, wall_start: float) -> dict[str, Any]:
        """Evaluate the best weights on validation and test, write summary.json and curves.png."""
        model, splits, context = run.model, run.splits, run.context
        model.to(memory_format=torch.contiguous_format)
        transform = run.policy.eval_transform()
        val_labels, val_probs = self._predict(model, splits.val, transform, context)
        test_labels, test_probs = self._predict(model, splits.test, transform, context)
        summary = {
            "recipe_name": self.recipe.name,
            "seed": self.recipe.seed,
            "model": {"name": self.recipe.model.name, "params": run.params, "img_size": self.recipe.data.img_size,
                      "pretrained": self.recipe.model.pretrained},
            "class_names": list(splits.class_names),
            "data": splits.describe(),
            "best_epoch": state["best_epoch"],
            "best_val_loss": state["best_val_loss"],
            "epochs_run": state["epoch"],
            "stopped_early": stopped_early,
            "train_time_s": state["train_time_s"],
            "wall_time_s": time.perf_counter() - wall_start,
            "peak_memory_mb": peak_memory_mb(context.device),
            "device": str(context.device),
            "world_size": context.world_size,
            "val": classification_report(val_labels, val_probs, splits.class_names, "val"),
            "test": classification_report(test_labels, test_probs, splits.class_names, "test"),
            "versions": package_versions(),
            "hardware": hardware(),
        }
        _write_json_atomic(self.run_dir / "summary.json", summary)
        try:
            from zoo_core.evaluate.plots import plot_run_curves

            plot_run_curves(self.run_dir)
        except ImportError:
            logger.debug("plots unavailable; curves.png not written")
        test = summary["test"]
        logger.info(
            "test top1 %.2f%% on %d images (best epoch %s of %d)",
            100 * test["top1"], test["num_images"], state["best_epoch"], state["epoch"],
        )
        return summary
