"""``--config FILE``: an experiment read from YAML (or JSON, a run's own ``config.json``), and
the flags of every data and training setting, generated from the settings dataclasses.

An experiment is built in layers, each overriding the one before:
``defaults < preset < --config file < flags given on the command line``. A layer is a dict
shaped like ``config.json``: ``method``, ``student``, ``teacher``, ``weights``,
``method_config`` (knobs) and the sections ``data`` and ``train`` (only what it sets).
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing

from fcfd_viz.data.datasets import DataConfig
from fcfd_viz.errors import UserError
from fcfd_viz.training.config import TrainConfig, upgrade_train

SECTIONS = {"data": DataConfig, "train": TrainConfig}
TOP = ("method", "student", "teacher", "weights", "method_config", "task")
# what a run records in config.json (its format marker, the teacher's hash, how the batch
# was split, what precision ran); never read back as a setting
RECORDS = ("format", "teacher_sha256", "distributed", "runtime")

PRECEDENCE = "defaults < --preset < --config file < flags given on the command line"
# a settings file is a few hundred bytes, a few levels deep: far past these it is not one
# (a checkpoint passed by mistake, /dev/zero, a YAML alias bomb) and must not eat the memory
MAX_BYTES, MAX_DEPTH, MAX_NODES = 1 << 20, 20, 10_000


def _flag(f: dataclasses.Field) -> str:
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def _dest(f: dataclasses.Field) -> str:
    """Where argparse keeps a setting's flag: named after the flag (``--workers``: workers)."""
    return _flag(f)[2:].replace("-", "_")


def add_setting_args(
    p: argparse.ArgumentParser, section: str, title: str, description: str | None = None
) -> None:
    """A flag per field of ``SECTIONS[section]`` in a help group ``title``: its help line, type,
    choices and default come from the field (:func:`fcfd_viz.io.checks.setting`). Every flag
    defaults to None, so a preset or a config file fills what the user left out."""
    cls = SECTIONS[section]
    hints = typing.get_type_hints(cls)
    g = p.add_argument_group(title, description)
    for f in dataclasses.fields(cls):
        typ = hints[f.name]
        if isinstance(typ, types.UnionType):  # X | None
            typ = next(a for a in typing.get_args(typ) if a is not type(None))
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        text = f.metadata["help"]
        if default is not None and "default" not in text:
            text += f" (default: {default})"
        text = text.replace("%", "%%")
        kind: dict = {"metavar": None if f.metadata["choices"] else typ.__name__.upper()}
        if typ is bool:
            kind = {"action": argparse.BooleanOptionalAction}
        elif typing.get_origin(typ) is list:
            kind = {"type": typing.get_args(typ)[0], "nargs": "*", "metavar": "N"}
        else:
            kind |= {"type": typ, "choices": f.metadata["choices"]}
        g.add_argument(_flag(f), dest=_dest(f), default=None, help=text, **kind)


def flags_layer(args: argparse.Namespace) -> dict:
    """The data and training settings given as flags (those left None are not given)."""
    layer = {
        section: {
            f.name: getattr(args, _dest(f))
            for f in dataclasses.fields(cls)
            if getattr(args, _dest(f), None) is not None
        }
        for section, cls in SECTIONS.items()
    }
    layer["train"] = upgrade_train(layer["train"])  # --amp: the old name of --precision
    return layer


def _unknown(path, where: str, key, valid) -> UserError:
    return UserError(
        f"--config {path}: unknown key {where}{key!r}; valid keys there: {', '.join(valid)}"
    )


def read_config_file(path: str, extra: tuple[str, ...] = ()) -> dict:
    """The layer in the YAML/JSON file ``path`` (a run's config.json included), or a one-line
    UserError: a missing or malformed file, an unknown key (named with the valid ones).

    ``extra`` are further top-level keys the command takes (``preset``). The ``distributed``
    record is ignored, and a ``data.subset_seed`` equal to the file's ``train.seed`` (what a
    run records when the subset follows the seed) is dropped, so ``--seed`` moves both.
    """
    import yaml

    from fcfd_viz.runs.layout import method_fields

    raw = _load(path, yaml)
    if not isinstance(raw, dict):
        raise UserError(
            f"--config {path}: expected a mapping of settings, got {type(raw).__name__}"
        )
    valid = (*TOP, *SECTIONS, *extra)
    for key in raw:
        if key not in (*valid, *RECORDS):
            raise _unknown(path, "", key, valid)
    try:
        name, knobs = method_fields(raw)
    except ValueError as e:
        raise UserError(f"--config {path}: {e}") from None
    layer = {k: raw[k] for k in (*TOP, *extra) if k in raw and k != "method_config"}
    if name is not None:
        layer["method"] = name
    if not isinstance(knobs, dict):
        raise UserError(f"--config {path}: method_config must be a mapping of knobs")
    layer["method_config"] = dict(knobs)
    for section, cls in SECTIONS.items():
        values = raw.get(section) or {}
        if not isinstance(values, dict):
            raise UserError(f"--config {path}: {section} must be a mapping of settings")
        names = [f.name for f in dataclasses.fields(cls)]
        hints = typing.get_type_hints(cls)
        for key in values:
            if key not in names:
                raise _unknown(path, f"{section}.", key, names)
            _check_type(path, f"{section}.{key}", values[key], hints[key])
        layer[section] = upgrade_train(values) if section == "train" else dict(values)
    seed = layer["train"].get("seed")
    if seed is not None and layer["data"].get("subset_seed") == seed:
        del layer["data"]["subset_seed"]
    return layer


def _load(path: str, yaml):
    """The YAML / JSON document of ``path``, read with caps on its size, depth and number of
    nodes, or a one-line UserError (a binary file, /dev/zero, 900 nested lists)."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_BYTES + 1)  # never the whole of /dev/zero
    except OSError as e:
        raise UserError(f"--config {path}: {e.strerror or e}") from None
    if len(data) > MAX_BYTES:
        raise UserError(f"--config {path}: larger than {MAX_BYTES >> 20} MiB; not a settings file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise UserError(
            f"--config {path}: not a text file (a checkpoint?); pass a YAML or JSON file"
        ) from None
    try:
        raw = yaml.safe_load(text)
    except RecursionError:
        raise UserError(f"--config {path}: nested deeper than {MAX_DEPTH} levels") from None
    except yaml.YAMLError as e:
        where = getattr(e, "problem_mark", None)
        line = f" (line {where.line + 1})" if where else ""
        raise UserError(f"--config {path}: not YAML or JSON{line}: {e}".splitlines()[0]) from None
    _check_shape(path, raw)
    return raw


def _check_shape(path: str, raw) -> None:
    """Depth and node caps, counted without recursion (aliases may share nodes: a bomb of
    references stops at the node cap instead of expanding)."""
    stack, nodes = [(raw, 1)], 0
    while stack:
        obj, depth = stack.pop()
        nodes += 1
        if depth > MAX_DEPTH:
            raise UserError(f"--config {path}: nested deeper than {MAX_DEPTH} levels")
        if nodes > MAX_NODES:
            raise UserError(f"--config {path}: more than {MAX_NODES} values; not a settings file")
        if isinstance(obj, dict):
            stack.extend((v, depth + 1) for v in (*obj.keys(), *obj.values()))
        elif isinstance(obj, list):
            stack.extend((v, depth + 1) for v in obj)


_KINDS = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


def _check_type(path: str, where: str, value, hint) -> None:
    """A setting of the wrong kind (``epochs: 1.5``, ``epochs: true``), named with the kind
    it must be; the values themselves are checked when the run starts."""
    union = isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union
    kinds = [a for a in typing.get_args(hint) if a is not type(None)] if union else [hint]
    if value is None and union and type(None) in typing.get_args(hint):
        return
    kind = kinds[0] if len(kinds) == 1 else hint
    origin = typing.get_origin(kind) or kind
    if origin is list:
        ok, need = isinstance(value, list), "a list"
    elif kind in _KINDS:
        # a bool is an int to Python, never to a setting; an int is a fine float
        ok = isinstance(value, kind) and (kind is bool or not isinstance(value, bool))
        ok = ok or (kind is float and isinstance(value, int) and not isinstance(value, bool))
        need = _KINDS[kind]
    else:
        return
    if not ok:
        got = "true/false" if isinstance(value, bool) else type(value).__name__
        raise UserError(f"--config {path}: {where} must be {need}, got {value!r} ({got})")


def merge(*layers: dict) -> dict:
    """Later layers override earlier ones, key by key (sections and knobs merge, too)."""
    nested = (*SECTIONS, "method_config")
    out: dict = {key: {} for key in nested}
    for layer in layers:
        for key, value in layer.items():
            if key in nested:
                out[key].update(value or {})
            elif value is not None:
                out[key] = value
    return out


def check_knobs(
    method: str, knobs: dict, origin: str, command: str, task: str = "classification"
) -> dict:
    """The knobs of ``knobs`` that ``method`` takes; a note names those it lacks (knobs of
    other methods), a UserError a name no method has. ``origin`` names where they come from;
    ``task`` whose methods (:data:`fcfd_viz.experiments.tasks.TASKS`)."""
    import sys

    from fcfd_viz.experiments import tasks

    everyone = {k.name for k in tasks.all_knobs()}
    own = {k.name: k for k in tasks.task(task).methods.knobs(method)}
    for name in knobs:
        if name not in everyone:
            valid = ", ".join(sorted(own)) or "none"
            raise UserError(f"{origin}: unknown knob {name!r}; {method} takes: {valid}")
    lacks = sorted(set(knobs) - set(own))
    if lacks:
        print(
            f"fcfd {command}: note: {origin} knobs {', '.join(lacks)} do not apply to {method}; "
            "ignored",
            file=sys.stderr,
        )
    for name in set(knobs) & set(own):
        own[name].check(knobs[name], f"{origin} method_config.{name}")
    return {k: v for k, v in knobs.items() if k in own}


def experiment(layer: dict):
    """The :class:`~fcfd_viz.experiments.experiment.ExperimentConfig` of a merged layer (values are checked
    when the run starts: :func:`fcfd_viz.experiments.experiment.validate`)."""
    from fcfd_viz.experiments.experiment import ExperimentConfig

    return ExperimentConfig(
        method=layer["method"],
        student=layer["student"],
        teacher=layer.get("teacher"),
        data=DataConfig(**layer["data"]),
        train=TrainConfig(**layer["train"]),
        method_kwargs=layer["method_config"],
        weights=layer.get("weights"),
        task=layer.get("task") or "classification",
    )
