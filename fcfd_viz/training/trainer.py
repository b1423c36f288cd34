"""The training loop every method shares: CPU or CUDA, AMP, DDP, schedules, callbacks.

The trainer sums the loss dict a :class:`~fcfd_viz.distill.Distiller` returns and logs every
term; it knows nothing about any method.
"""

from __future__ import annotations

import math
import sys
import time
from collections import defaultdict
from contextlib import nullcontext

import torch
import torch.distributed as dist
from torch import Tensor, nn
from tqdm.auto import tqdm

from fcfd_viz.data.loaders import set_epoch
from fcfd_viz.distill.base import Distiller
from fcfd_viz.errors import Diverged
from fcfd_viz.io.files import fault_point
from fcfd_viz.runs.checkpoints import save_checkpoint
from fcfd_viz.runs.layout import Run
from fcfd_viz.training import runtime
from fcfd_viz.training.callbacks import Callback
from fcfd_viz.training.config import LOSS_LIMIT, TrainConfig, lr_at
from fcfd_viz.training.task import CLASSIFICATION, Task


class Trainer:
    """Trains ``distiller`` on ``train_loader``; evaluates its student on ``test_loader``.

    ``run`` (optional) receives config, metrics, checkpoints and summary; only rank 0 writes.
    ``meta`` (teacher, dataset, seed, input_shape: what the run adds to the distiller's own
    state) goes into every checkpoint and the summary. Under torchrun the distiller is
    wrapped in DistributedDataParallel. ``task`` (:mod:`fcfd_viz.training.task`) says how batches
    move and count, how the student is evaluated and which result is "best";
    classification by default.
    """

    def __init__(
        self,
        distiller: Distiller,
        train_loader,
        test_loader,
        cfg: TrainConfig,
        run: Run | None = None,
        callbacks: list[Callback] | None = None,
        meta: dict | None = None,
        progress: bool = True,
        task: Task = CLASSIFICATION,
    ) -> None:
        cfg.validate()
        self.task = task
        self.cfg, self.run, self.meta = cfg, run, dict(meta or {})
        self.callbacks = list(callbacks or [])
        self.train_loader, self.test_loader = train_loader, test_loader
        self.rank, self.world, local_rank = runtime.dist_info()
        dev = cfg.device
        if self.world > 1 and dev in ("auto", "cuda") and torch.cuda.is_available():
            dev = f"cuda:{local_rank}"
        self.device = runtime.resolve_device(dev)
        if self.device.type == "cuda" and self.device.index is not None:
            torch.cuda.set_device(self.device)  # plain "cuda" keeps the current device
        if self.device.type == "cuda" and task.fixed_input_shape:
            torch.backends.cudnn.benchmark = True  # one batch shape: time cuDNN's kernels once
        self.distiller = distiller.to(self.device)
        rt = runtime.runtime_record(self.device, cfg.precision, cfg.channels_last, distiller)
        self.runtime, self.channels_last = rt, rt["channels_last"]
        if self.channels_last:
            self.distiller.to(memory_format=torch.channels_last)
        self.amp_dtype = runtime.autocast_dtype(cfg.precision, self.device)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.optimizer = torch.optim.SGD(
            distiller.trainable_parameters(),
            lr=cfg.lr,
            momentum=cfg.momentum,
            nesterov=cfg.nesterov,
            weight_decay=cfg.weight_decay,
        )
        self.model: nn.Module = self.distiller  # or its DDP / compiled wrapper
        if self.world > 1:
            from torch.nn.parallel import DistributedDataParallel as DDP

            runtime.join_process_group(self.device)  # torchrun sets the env vars
            ids = [self.device.index] if self.device.type == "cuda" else None
            # FCFD samples a few paths per step, so some bridges get no gradient in a step
            self.model = DDP(self.distiller, device_ids=ids, find_unused_parameters=True)
        if cfg.compile:
            self.model = torch.compile(self.model)  # type: ignore[assignment]  # a Module
        self.start_epoch, self.elapsed = 0, 0.0
        self.best = task.initial_best()  # best_top1, best_top5 (classification)
        self.history: list[dict] = []
        self.stop_requested = False
        self.progress = progress

    # -- checkpoints ----------------------------------------------------------------------
    def checkpoint(self, epoch: int, with_optimizer: bool) -> dict:
        state = self.distiller.checkpoint_state()
        clash = sorted(state.keys() & self.meta.keys())
        if clash:  # a key with two meanings: refuse it rather than let one silently win
            raise ValueError(f"meta keys {clash} are the distiller's checkpoint state")
        ckpt = {
            **state,
            **self.meta,
            "epoch": epoch,
            **self.best,
            "elapsed": self.elapsed,
            # the epoch's metrics line: a kill between last.pt and metrics.jsonl loses nothing
            "record": self.history[-1] if self.history else None,
        }
        if with_optimizer:
            ckpt["optimizer"] = self.optimizer.state_dict()
            ckpt["scaler"] = self.scaler.state_dict()
        return ckpt

    def resume(self, ckpt: dict) -> None:
        """Continue from a ``last.pt`` checkpoint dict (loaded with weights_only=True)."""
        self.distiller.load_checkpoint_state(ckpt)
        self.optimizer.load_state_dict(ckpt["optimizer"])
        if "scaler" in ckpt:
            self.scaler.load_state_dict(ckpt["scaler"])
        self.start_epoch = int(ckpt["epoch"])
        self.elapsed = float(ckpt.get("elapsed", 0.0))
        self.best = self.task.best_from(ckpt)
        if self.run is not None:
            self.history = self.run.restore_metrics(self.start_epoch, ckpt.get("record"))

    # -- the loop -------------------------------------------------------------------------
    def _step(self, x, y) -> dict[str, float]:
        x, y = self.task.to_device(x, y, self.device, self.channels_last)
        ctx = (
            torch.autocast(self.device.type, dtype=self.amp_dtype)
            if self.amp_dtype
            else nullcontext()
        )
        with ctx:
            logits, losses = self.model(x, y)
            loss = sum(losses.values())
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        # the step's one sync, after the backward is queued (on a GPU it runs meanwhile) and
        # before the weights change: a diverged loss leaves them as they were
        value = float(loss.detach())
        if not math.isfinite(value) or value > LOSS_LIMIT:
            raise Diverged(f"the loss reached {value:.3g}")
        self.scaler.step(self.optimizer)
        self.scaler.update()
        out = {k: v.detach() for k, v in losses.items()}
        out["loss"] = loss.detach()
        out.update(self.task.step_stats(logits, y))
        out["_count"] = torch.tensor(self.task.count(y), device=self.device)
        return out

    def train_epoch(self, epoch: int) -> dict[str, float]:
        cfg = self.cfg
        lr = lr_at(cfg, epoch)
        for g in self.optimizer.param_groups:
            g["lr"] = lr
        # every random draw of the epoch (shuffle, augmentation, FCFD paths) is a function of
        # (seed, epoch), so a resumed run replays exactly what an uninterrupted one would do
        runtime.seed_everything(cfg.seed * 100_003 + epoch)
        set_epoch(self.train_loader, cfg.seed, epoch)
        self.distiller.start_epoch(epoch, cfg.epochs)
        self.model.train()
        sums: dict[str, Tensor] = defaultdict(lambda: torch.zeros((), device=self.device))
        bar = tqdm(
            self.train_loader,
            desc=f"epoch {epoch + 1}/{cfg.epochs}",
            leave=False,
            disable=not self.progress or self.rank != 0,
        )
        steps, warming = 0, epoch < cfg.warmup_epochs
        # callbacks with a step hook of their own (TensorBoard logs per epoch): the others cost
        # no device-to-host copies of every loss term at every step
        watchers = [c for c in self.callbacks if type(c).on_step_end is not Callback.on_step_end]
        for step, (x, y) in enumerate(bar):
            if warming:  # the warm-up ramps per step (a one-epoch warm-up ramps at all)
                for g in self.optimizer.param_groups:
                    g["lr"] = lr_at(cfg, epoch, (step + 1) / len(self.train_loader))
            out = self._step(x, y)
            for k, v in out.items():
                sums[k] += v * (self.task.count(y) if not k.startswith("_") else 1)
            steps += 1
            if watchers:  # the step's values as floats once, for every callback
                values = {k: float(v) for k, v in out.items() if not k.startswith("_")}
                for cb in watchers:
                    cb.on_step_end(self, step, values)
            if self._poll_stop():
                break
        names = sorted(sums)
        vec = torch.stack([sums[k].float() for k in names])
        if self.world > 1:
            dist.all_reduce(vec)
        tot = dict(zip(names, vec.tolist()))
        n = max(1.0, tot.pop("_count"))
        trained = self.task.train_record(tot, n)  # pops its sums (classification: hits)
        rec = {
            "lr": lr,
            "loss": tot.pop("loss") / n,
            "losses": {k: v / n for k, v in tot.items()},
            **trained,
            "steps": steps,
        }
        return rec

    def _poll_stop(self) -> bool:
        """True once a stop was asked for (STOP file or :attr:`stop_requested`), on every rank."""
        stop = self.stop_requested or (self.run is not None and self.run.stop_requested())
        if self.world > 1:  # only rank 0 has the run directory: share its answer
            flag = torch.tensor(float(stop), device=self.device)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            stop = bool(flag.item())
        self.stop_requested = stop
        return stop

    def fit(self) -> dict:
        """Train from ``start_epoch`` to ``cfg.epochs``; returns the summary dict."""
        cfg = self.cfg
        if self.rank == 0 and self.progress:  # with the bars: what auto resolved to (the
            # run's config.json records it always; --no-progress keeps stderr for errors only)
            print(runtime.runtime_line(self.runtime), file=sys.stderr)
        for cb in self.callbacks:
            cb.on_train_start(self)
        writer = self.run if self.rank == 0 else None
        for epoch in range(self.start_epoch, cfg.epochs):
            t0 = time.perf_counter()
            if writer is not None:
                writer.write_status(state="running", epoch=epoch, epochs=cfg.epochs)
            try:
                rec = self.train_epoch(epoch)
                self._check_weights()
            except Diverged as e:  # nothing of this epoch is saved: last.pt stays good
                done = self.history[-1]["epoch"] if self.history else 0
                raise e.explained(epoch, done, cfg.lr, LOSS_LIMIT) from None
            if self.stop_requested and rec["steps"] < len(self.train_loader):
                # a stop mid-epoch drops the partial epoch: last.pt stays at the end of the
                # previous one, so --resume replays this epoch exactly as an uninterrupted run
                break
            student, at = self.distiller.student, (self.test_loader, self.device, self.amp_dtype)
            # rank 0 alone tests
            tested = self.task.evaluate(student, *at) if self.rank == 0 else self.task.no_eval()
            seconds = time.perf_counter() - t0
            self.elapsed += seconds
            rec = {"epoch": epoch + 1, **rec, **tested, "seconds": seconds}
            self.task.track(self.best, rec)
            self.history.append(rec)
            if writer is not None:
                if self.task.improved(self.best, rec):
                    save_checkpoint(
                        writer.file("best.pt"), self.checkpoint(epoch + 1, with_optimizer=False)
                    )
                # last.pt holds this epoch's line too: a kill before the append below loses
                # nothing, as a resume restores the line from the checkpoint
                save_checkpoint(
                    writer.file("last.pt"), self.checkpoint(epoch + 1, with_optimizer=True)
                )
                fault_point("after-checkpoint", str(epoch + 1))
                writer.append_metrics(rec)
            for cb in self.callbacks:
                cb.on_epoch_end(self, rec)
            if self.stop_requested:
                break
        summary = self.summary()
        if writer is not None:
            writer.write_summary(summary)
            writer.write_status(
                state="stopped" if self.stop_requested else "completed",
                epoch=len(self.history),
                epochs=cfg.epochs,
            )
        for cb in self.callbacks:
            cb.on_train_end(self, summary)
        return summary

    def _check_weights(self) -> None:
        """Weights that turned NaN/inf in the epoch's last step must not be checkpointed."""
        params = [p.detach() for p in self.distiller.trainable_parameters()]
        if params and not bool(torch.stack([p.isfinite().all() for p in params]).all()):
            raise Diverged("the weights became NaN or infinite")

    def summary(self) -> dict:
        """summary.json: results (the task's: top-1, top-5 or mAP, last and best epoch), the
        method's name, the student's arch (under ``arch`` and ``student``, both documented
        keys, from the one model) and class count, and meta."""
        last = self.history[-1] if self.history else {}
        student = self.distiller.student
        return {
            **self.task.summary(last, self.best, student),
            "epochs": len(self.history),
            "seconds": round(self.elapsed, 3),
            "stopped": self.stop_requested,
            "method": self.distiller.method,
            "arch": student.arch,
            "student": student.arch,
            "num_classes": student.num_classes,
            **self.meta,
        }
