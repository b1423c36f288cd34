"""What a post-hoc connector fit is asked to do (:class:`FitConfig`) and what it reports
(:class:`FitInfo`, one :class:`BridgeFit` per bridge); the fitting itself is
:func:`fcfd_viz.analysis.connectors.fit_connectors`."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from fcfd_viz.errors import UserError


@dataclass
class FitConfig:
    """How post-hoc connectors are fitted (see the module docstring for the stopping rule)."""

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

    def validate(self) -> None:
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

    @property
    def epochs(self) -> int:
        return len(self.curve)

    @property
    def initial_loss(self) -> float:
        return self.curve[0]

    @property
    def final_loss(self) -> float:
        return self.curve[-1]

    def to_dict(self) -> dict:
        return {
            "epochs": self.epochs,
            "converged": self.converged,
            "initial_loss": self.initial_loss,
            "final_loss": self.final_loss,
            "lr_drop_epochs": list(self.lr_drop_epochs),
            "curve": list(self.curve),
        }

    @classmethod
    def from_dict(cls, d: dict) -> BridgeFit:
        return cls(list(d["curve"]), bool(d["converged"]), list(d.get("lr_drop_epochs", [])))


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
            FitConfig(**d["config"]),
        )
