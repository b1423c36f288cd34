"""The one shape every analysis takes (captum-like): bind, then compute a typed result.

An :class:`Analysis` is bound in ``__init__`` to a model and whatever else it needs (a
stage, a teacher and students, bridges); it never changes their weights. One documented
call, ``compute(...)``, returns a :class:`Result`: a dataclass of tensors with ``to_dict()``
(JSON-ready) and ``from_dict()``. With default arguments ``to_dict()`` is lossless and
``from_dict(r.to_dict()).to_dict() == r.to_dict()``, tensors coming back as tensors; options
that drop data (``per_image=False``, ``curves=False``, ``full=False``) give summaries for
people and the CLI, which ``from_dict`` does not read.

>>> probe = Anisotropy(model, stage=2)                  # doctest: +SKIP
>>> result = probe.compute(images, eps=0.05)            # doctest: +SKIP
>>> same = AnisotropyResult.from_dict(result.to_dict()) # doctest: +SKIP

Figures (:mod:`fcfd_viz.viz.figures`) take results, never dicts; the app caches results and the
CLI prints ``to_dict()``. A new analysis copies this shape: a ``Result`` dataclass, an
``Analysis`` subclass, a figure in ``viz`` taking the result, and a test of its round trip.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any, Generic, TypeVar

import torch
from torch import Tensor

from fcfd_viz.errors import UserError
from fcfd_viz.training.runtime import full_precision

R = TypeVar("R", bound="Result")


class Result(ABC):
    """A typed analysis result: ``to_dict()`` for JSON, ``from_dict()`` to rebuild it."""

    @abstractmethod
    def to_dict(self) -> dict:
        """JSON-ready (non-finite numbers become None); lossless with default arguments."""

    @classmethod
    @abstractmethod
    def from_dict(cls: type[R], d: dict) -> R:
        """Rebuild a result from :meth:`to_dict`'s default output (e.g. read from JSON)."""

    def save(self, path: str | Path) -> None:
        """Write :meth:`to_dict` as JSON, atomically."""
        from fcfd_viz.io.files import write_json

        write_json(path, self.to_dict())

    @classmethod
    def load(cls: type[R], path: str | Path) -> R:
        """Read a result :meth:`save` wrote."""
        from fcfd_viz.io.files import read_json

        return cls.from_dict(read_json(path))


class Analysis(ABC, Generic[R]):
    """An analysis bound to a model (and what it needs) in ``__init__``; weights never change.

    Subclasses document their one call, ``compute(...)``, which returns their result type.
    ``compute`` always runs in fp32: an enclosing autocast (a bf16 training step, a bf16
    evaluation) is switched off inside it (:func:`fcfd_viz.training.runtime.full_precision`), as the
    small KL divergences and finite differences of probes and gaps need it.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        own = cls.__dict__.get("compute")
        if own is not None and not getattr(own, "__isabstractmethod__", False):
            cls.compute = _in_fp32(own)

    @abstractmethod
    def compute(self, *args: Any, **kwargs: Any) -> R:
        """Run the analysis and return its typed :class:`Result`."""


def _in_fp32(compute: Callable) -> Callable:
    @functools.wraps(compute)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        with full_precision():
            return compute(*args, **kwargs)

    return wrapped


def finite(x: float | None) -> float | None:
    """``x``, or None when it is missing or not finite (JSON has no NaN or inf)."""
    return x if x is not None and math.isfinite(x) else None


def to_list(t: Tensor | None) -> list | None:
    """A tensor as nested lists, non-finite floats as None (the inverse: :func:`to_tensor`)."""
    if t is None:
        return None
    if t.dim() == 0:
        return finite(t.item()) if t.is_floating_point() else t.item()
    if t.dim() == 1:
        return [finite(v) if isinstance(v, float) else v for v in t.tolist()]
    return [to_list(r) for r in t]


def to_tensor(values: list | None, dtype: torch.dtype = torch.float64) -> Tensor | None:
    """Nested lists back to a tensor; None entries become NaN."""
    if values is None:
        return None

    def nan(v):
        return [nan(x) for x in v] if isinstance(v, list) else (math.nan if v is None else v)

    return torch.tensor(nan(values), dtype=dtype)


def require(d: dict, key: str, what: str) -> Any:
    """``d[key]``, or a :class:`UserError` saying that ``d`` is a summary, not a full result."""
    if not isinstance(d, dict) or key not in d:
        raise UserError(
            f"cannot rebuild {what} without {key!r}: this looks like a summary; "
            "pass the output of to_dict() with its default arguments"
        )
    return d[key]


def result_file(folder: str | Path, prefix: str, key: Any) -> Path:
    """``folder/<prefix>-<hash of key>.json``: where :func:`stored` keeps a result."""
    digest = hashlib.sha1(json.dumps(key, default=str).encode()).hexdigest()[:16]
    return Path(folder) / f"{prefix}-{digest}.json"


def stored(cls: type[R], path: str | Path, compute: Callable[[], R]) -> R:
    """The result saved at ``path``, else ``compute()`` saved there for the next caller.

    A missing, unreadable or outdated file (one ``from_dict`` cannot read) is recomputed.
    """
    try:
        return cls.load(path)
    except (OSError, ValueError, KeyError, TypeError, UserError):
        pass
    result = compute()
    keep(path, result.save)
    return result


def keep(path: str | Path, save: Callable[[Path], None]) -> bool:
    """``save(path)`` into a cache folder made if missing; a folder that cannot be written
    (a read-only runs folder) costs the cache, never the result: one note on stderr and
    False. The result was computed already; losing it to a cache write would waste it."""
    import sys

    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        save(path)
        return True
    except (OSError, UserError) as e:
        why = e.strerror if isinstance(e, OSError) and e.strerror else str(e).split(";")[0]
        print(
            f"fcfd: note: not cached ({path.parent}: {why}); the result is shown, "
            "and measured again next time",
            file=sys.stderr,
        )
        return False
