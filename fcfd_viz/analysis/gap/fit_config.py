"""What a post-hoc connector fit is asked to do (:class:`FitConfig`) and what it reports
(:class:`FitInfo`, one :class:`BridgeFit` per bridge); the fitting itself is
:func:`fcfd_viz.analysis.gap.connectors.fit_connectors`."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from fcfd_viz.errors import UserError

FIT_METHODS = ("lstsq", "adam")  # closed form (the default), the Adam loop alone


@dataclass
class FitConfig:
    """How post-hoc connectors are fitted.

    ``method``: ``"lstsq"`` (default) solves each bridge in closed form
    (:mod:`fcfd_viz.analysis.gap.closed_form`: ridge ``ridge`` relative to the features' trace; the
    LeakyReLU bridges then take at most ``refine_steps`` full-batch steps on their own MSE,
    and ``refine_epochs`` epochs of the loop at ``refine_lr``);
    ``"adam"`` is the loop alone (:mod:`fcfd_viz.analysis.gap.connectors`: ``lr``, at most
    ``max_epochs`` epochs, the plateau rule of ``min_epochs``, ``rel_tol``, ``patience``,
    ``lr_drops``). ``max_epochs`` caps the refinement too.
    """

    max_epochs: int = 400
    min_epochs: int = 10
    lr: float = 1e-2
    rel_tol: float = 1e-3
    patience: int = 8
    lr_drops: int = 1
    batch_size: int = 64
    weight_decay: float = 0.0
    seed: int = 0
    cache_mb: float = 2048.0
    method: str = "lstsq"
    ridge: float = 1e-5
    refine_steps: int = 8
    refine_epochs: int = 0
    refine_lr: float = 1e-3

    def validate(self) -> None:
        if self.method not in FIT_METHODS:
            raise UserError(
                f"fit method must be one of {', '.join(FIT_METHODS)}, got {self.method!r}"
            )
        if not (self.ridge >= 0 and math.isfinite(self.ridge)):
            raise UserError(f"fit ridge must be a finite number >= 0, got {self.ridge}")
        if min(self.refine_steps, self.refine_epochs) < 0 or not (
            self.refine_lr > 0 and math.isfinite(self.refine_lr)
        ):
            raise UserError("fit refine_steps and refine_epochs must be >= 0, refine_lr > 0")
        if self.max_epochs < 1:
            raise UserError(f"fit max_epochs must be >= 1, got {self.max_epochs}")
        if self.lr <= 0 or not math.isfinite(self.lr):
            raise UserError(f"fit lr must be > 0, got {self.lr}")
        if self.patience < 1 or self.batch_size < 1 or self.lr_drops < 0 or self.rel_tol < 0:
            raise UserError("fit patience and batch_size must be >= 1, lr_drops and rel_tol >= 0")


def fit_plan(
    fit: FitConfig | bool | None, train_loader, unbridged: list[str], default: FitConfig
) -> FitConfig | None:
    """The fit a gap measurement does: ``fit`` (a :class:`FitConfig`; True/None: ``default``;
    False: none) when a training loader is there, else None. Raises :class:`UserError` when
    a config asks for a fit without data, or when students without bridges of their own
    (``unbridged``) would go unmeasured."""
    if isinstance(fit, FitConfig) and train_loader is None:
        raise UserError("fitting connectors needs a training loader (train_loader)")
    if fit is False or train_loader is None:
        if unbridged:
            raise UserError(
                f"student(s) {', '.join(unbridged)} have no bridges of their own, so their "
                "connectors must be fitted: drop --no-fit (in code: pass a training loader)"
            )
        return None
    return fit if isinstance(fit, FitConfig) else default


@dataclass
class BridgeFit:
    """Convergence of one fitted bridge: the mean training MSE of every epoch."""

    curve: list[float]
    converged: bool  # stopped by the plateau rule (False: hit max_epochs)
    lr_drop_epochs: list[int] = field(default_factory=list)  # 1-based epochs where lr fell
    # the eval-mode MSE on the fit data of the bridge as kept (closed form); None: the loop's
    # last epoch (train-mode loss) stands for it
    kept_mse: float | None = None

    @property
    def epochs(self) -> int:
        return len(self.curve)

    @property
    def initial_loss(self) -> float:
        return self.curve[0]

    @property
    def final_loss(self) -> float:
        return self.curve[-1] if self.kept_mse is None else self.kept_mse

    def to_dict(self) -> dict:
        return {
            "epochs": self.epochs,
            "converged": self.converged,
            "initial_loss": self.initial_loss,
            "final_loss": self.final_loss,
            "lr_drop_epochs": list(self.lr_drop_epochs),
            "curve": list(self.curve),
            "kept_mse": self.kept_mse,
        }

    @classmethod
    def from_dict(cls, d: dict) -> BridgeFit:
        kept = d.get("kept_mse")
        return cls(
            list(d["curve"]),
            bool(d["converged"]),
            list(d.get("lr_drop_epochs", [])),
            None if kept is None else float(kept),
        )


@dataclass
class FitInfo:
    """The fit of all connectors of one student, keyed ``"s2t/1"``, ``"t2s/1"`` ..."""

    bridges: dict[str, BridgeFit]
    num_images: int
    cached: bool
    seconds: float
    config: FitConfig

    @property
    def epochs(self) -> int:
        """Epochs of the longest-running bridge."""
        return max(b.epochs for b in self.bridges.values())

    @property
    def converged(self) -> bool:
        return all(b.converged for b in self.bridges.values())

    def to_dict(self, curves: bool = True) -> dict:
        out = {
            "epochs": self.epochs,
            "converged": self.converged,
            "num_images": self.num_images,
            "cached": self.cached,
            "seconds": self.seconds,
            "config": asdict(self.config),
            "bridges": {k: b.to_dict() for k, b in self.bridges.items()},
        }
        if not curves:
            for b in out["bridges"].values():
                b.pop("curve")
        return out

    @classmethod
    def from_dict(cls, d: dict) -> FitInfo:
        """Inverse of ``to_dict(curves=True)`` (to keep a fit next to its saved bridges)."""
        return cls(
            {k: BridgeFit.from_dict(b) for k, b in d["bridges"].items()},
            int(d["num_images"]),
            bool(d["cached"]),
            float(d["seconds"]),
            FitConfig(**{"method": "adam", **d["config"]}),  # records before lstsq: Adam's
        )
