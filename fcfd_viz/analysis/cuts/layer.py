"""Cut any ``nn.Module`` after a submodule named by its dotted path, through hooks.

:meth:`LayerCut.split` runs one clean forward pass with every module's ``forward`` wrapped
(for that pass only) and records the module calls in order; the feature is the layer's
output. ``rest(g)`` runs the model again on the images, repeated ``m`` times along the
batch, with the layer's output replaced by ``g``. What cannot depend on ``g`` is not
recomputed: every *outermost* module call that ended before the layer's call started is
replayed from the recording (its output repeated ``m`` times) instead of running, so the
stem and the earlier stages of a ResNet cost nothing in the perturbed passes, while the code
between modules (the additions of skip connections, reshapes, a class token) still runs on
the replayed values. Calls are counted per module: a module that runs before and after the
layer (a shared ReLU) is replayed only where it ran before it, and the calls nested in a
replayed call are counted as if they had run. Values computed before the layer and reused
after it (a skip connection around the layer) come from the replayed calls.

The clean pass stops at the layer: nothing after it runs. Replaying assumes that a recorded
output has the batch first. Every split checks it on (at most) three of the images, at little
cost: the rest of two stacked copies of their feature must give their clean logits twice.
When it does not (a sequence-first attention module, a module with state), the cut warns
and recomputes everything before the layer in every pass (correct, slower).
``replay=False`` always does so: the plain "swap the output in a forward hook" probe.

>>> cut = LayerCut(torchvision_vit, "encoder.layers.encoder_layer_0")  # doctest: +SKIP
>>> f, rest = cut.split(images)            # f: (N, T, D); rest: (m*N, T, D) -> logits  # doctest: +SKIP
"""

from __future__ import annotations

import difflib
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils._pytree import tree_map

from fcfd_viz.analysis.cuts.cut import Cut, Rest, model_device
from fcfd_viz.errors import UserError

Key = tuple[int, int]  # (module index, call number of that module)
CHECK_IMAGES = 3  # the replay check's images (few: cheap; not 2, a common size)
REPLAY_RTOL = 1e-3  # the replay check: |logit difference| <= rtol * (1 + max |logit|)


def find_module(model: nn.Module, name: str) -> nn.Module:
    """The submodule of ``model`` at dotted path ``name``; a :class:`UserError` listing close
    names when there is none."""
    if not isinstance(name, str) or not name.strip(" ."):
        raise UserError("name a layer by its dotted path, e.g. 'layer3.1' ('' is the whole model)")
    try:
        return model.get_submodule(name)
    except AttributeError:
        pass
    names = [n for n, _ in model.named_modules() if n]
    close = difflib.get_close_matches(name, names, n=5, cutoff=0.6)
    if not close:  # the children of the longest valid prefix
        parts = name.split(".")
        for i in range(len(parts) - 1, -1, -1):
            prefix = ".".join(parts[:i])
            kids = [n for n in names if n.rpartition(".")[0] == prefix]
            if kids:
                close = kids[:8]
                break
    hint = f"; close names: {', '.join(close)}" if close else ""
    raise UserError(f"{type(model).__name__} has no layer {name!r}{hint}")


@dataclass
class _Call:
    key: Key
    parent: _Call | None
    nested: Counter = field(default_factory=Counter)  # calls inside it, per module index
    children: list[Key] = field(default_factory=list)  # recorded direct children


@dataclass
class _Recording:
    """What one clean pass leaves for the rest passes."""

    target_key: Key | None = None
    target_calls: int = 0
    target_nested: Counter = field(default_factory=Counter)
    feature: Any = None
    replay: dict[Key, tuple[Any, Counter]] = field(default_factory=dict)


def _clone(value: Any) -> Any:
    return value.clone() if isinstance(value, Tensor) else value


def _repeat(value: Any, m: int) -> Any:
    """Every tensor in ``value`` repeated ``m`` times along dim 0 (always a fresh copy)."""
    return tree_map(
        lambda t: t.repeat(m, *[1] * (t.dim() - 1)) if isinstance(t, Tensor) else t, value
    )


class _Stop(Exception):
    """Ends a clean pass at the layer."""


def _replays(rest: Rest, f: Tensor, z0: Tensor) -> bool:
    """Whether ``rest`` gives the clean logits ``z0`` for two stacked copies of ``f``."""
    try:
        with torch.no_grad():
            z2 = rest(torch.cat([f, f]))
    except RuntimeError:  # shapes that only fit with the batch first
        return False
    if not isinstance(z2, Tensor) or z2.shape != (2 * len(z0), *z0.shape[1:]):
        return False
    return bool((z2.view(2, *z0.shape) - z0).abs().max() <= REPLAY_RTOL * (1 + z0.abs().max()))


@contextmanager
def _wrapped(modules: list[nn.Module], make: Callable[[int, Callable], Callable]) -> Iterator:
    """Replace each module's ``forward`` by ``make(index, original)`` inside the block."""
    saved = []
    try:
        for j, m in enumerate(modules):
            saved.append((m, m.__dict__.get("forward")))
            m.forward = make(j, m.forward)
        yield
    finally:
        for m, own in saved:
            if own is None:
                del m.forward
            else:
                m.forward = own


class LayerCut(Cut):
    """``model`` cut after the submodule at dotted path ``layer`` (see the module docstring).

    Args:
        model: any network mapping images (N, ...) to logits (N, K).
        layer: dotted module name, e.g. ``"layer3.1"`` or ``"encoder.layers.encoder_layer_0"``;
            it must run once per forward pass and return one tensor with the batch first.
        replay: replay the calls before the layer (the default) instead of recomputing them.
    """

    def __init__(self, model: nn.Module, layer: str, replay: bool = True) -> None:
        self.model = model
        self.module = find_module(model, layer)
        self.layer = layer
        self.replay = replay
        self._modules = list(model.modules())  # unique modules, the model first
        self._rest: Rest | None = None

    def split(self, images: Tensor) -> tuple[Tensor, Rest]:
        x = images.to(model_device(self.model))
        xs = x[:CHECK_IMAGES]
        with torch.no_grad():
            few, z0 = self._record(xs, stop=False)  # a whole pass: the check's images
            rec = few if len(x) <= len(xs) else self._record(x)[0]  # up to the layer
        self._check(few, len(xs), z0, logits=True)
        f = self._check(rec, x.shape[0])
        rest = partial(self._run, rec, x, {}, self.replay)
        if self.replay and not _replays(partial(self._run, few, xs, {}, True), few.feature, z0):
            warnings.warn(
                f"layer {self.layer!r}: replaying the modules before it does not give the "
                "model's output (is the batch not first?); recomputing them in every pass",
                stacklevel=2,
            )
            rest = partial(self._run, rec, x, {}, False)
        self._rest = rest
        return f, rest

    def rest(self, f: Tensor) -> Tensor:
        if self._rest is None:
            raise UserError(f"layer {self.layer!r}: call split(images) before rest(f)")
        return self._rest(f)

    # ---- the clean pass
    def _record(self, x: Tensor, stop: bool = True) -> tuple[_Recording, Any]:
        """The calls of one clean pass (to the layer with ``stop``), and the model's output."""
        rec, counts, stack = _Recording(), Counter(), []

        def make(j: int, forward: Callable) -> Callable:
            is_target = self._modules[j] is self.module

            def recording_forward(*args, **kwargs):
                call = _Call((j, counts[j]), stack[-1] if stack else None)
                counts[j] += 1
                if is_target:
                    rec.target_calls += 1
                    rec.target_key = rec.target_key or call.key
                stack.append(call)
                try:
                    out = forward(*args, **kwargs)
                finally:
                    stack.pop()
                if call.parent is not None:
                    call.parent.nested[j] += 1
                    call.parent.nested.update(call.nested)
                keep = partial(tree_map, _clone, out)  # safe from later in-place ops
                if call.key == rec.target_key:
                    rec.feature, rec.target_nested = keep(), call.nested
                    if stop:
                        raise _Stop
                elif rec.target_key is None:  # ended before the layer started: replayable
                    # it covers its children: they never run when it is replayed
                    for child in call.children:
                        rec.replay.pop(child, None)
                    rec.replay[call.key] = (keep(), call.nested)
                    if call.parent is not None:
                        call.parent.children.append(call.key)
                return out

            return recording_forward

        z0 = None
        with _wrapped(self._modules, make):
            try:
                z0 = self.model(x)
            except _Stop:
                pass
        return rec, z0

    def _check(self, rec: _Recording, n: int, z0: Any = None, logits: bool = False) -> Tensor:
        """The feature, or a :class:`UserError` saying why this layer (or ``logits``, the
        model's output ``z0``) does not suit a probe."""
        name, kind = self.layer, type(self.model).__name__
        if rec.target_calls == 0:
            raise UserError(f"layer {name!r} does not run in {kind}'s forward pass")
        if rec.target_calls > 1:
            raise UserError(
                f"layer {name!r} runs {rec.target_calls} times in one forward pass; "
                "probe a module that runs once (e.g. its parent)"
            )
        f = rec.feature
        if not isinstance(f, Tensor):
            raise UserError(
                f"layer {name!r} returns a {type(f).__name__}, not one tensor; probe a module "
                "that returns a single tensor (e.g. its parent)"
            )
        if f.dim() < 2 or f.shape[0] != n:
            raise UserError(
                f"layer {name!r} returns shape {tuple(f.shape)} for {n} images; "
                "the probe needs one feature per image, the batch first"
            )
        if not logits:
            return f
        if not isinstance(z0, Tensor) or z0.dim() != 2 or z0.shape[0] != n:
            raise UserError(
                f"{kind} must return logits (N, K) for a probe, got "
                f"{tuple(z0.shape) if isinstance(z0, Tensor) else type(z0).__name__}"
            )
        return f

    # ---- the rest passes
    def _run(self, rec: _Recording, x: Tensor, inputs: dict, replay: bool, g: Tensor) -> Tensor:
        """Logits (B, K) from the replaced feature ``g`` (B = m * N, copy-major)."""
        n = x.shape[0]
        if g.shape[0] % n:
            raise ValueError(f"rest takes m * {n} maps, got {g.shape[0]}")
        m = g.shape[0] // n
        if m not in inputs:  # the images, m times (only the code between modules reads them)
            inputs[m] = x.repeat(m, *[1] * (x.dim() - 1))
        counts = Counter()
        replayed = rec.replay if replay else {}

        def make(j: int, forward: Callable) -> Callable:
            def replaying_forward(*args, **kwargs):
                key = (j, counts[j])
                counts[j] += 1
                if key == rec.target_key:
                    counts.update(rec.target_nested)
                    return g.clone()  # later in-place ops must not write into the caller's g
                hit = replayed.get(key)
                if hit is None:
                    return forward(*args, **kwargs)
                counts.update(hit[1])
                return _repeat(hit[0], m)

            return replaying_forward

        with _wrapped(self._modules, make):
            return self.model(inputs[m])
