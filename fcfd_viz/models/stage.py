"""Any network as a :class:`StagedNet`, cut at module names: :func:`stage`.

The network is traced with ``torch.fx`` (the cut modules kept whole); stage ``i`` is the
part of the graph from the output of ``cut_points[i-1]`` (the input for ``i = 0``) to the
output of ``cut_points[i]``, and the head is the rest. A cut is refused, naming it, when the
graph is not a chain there: a value computed before it is read after it (a skip connection
crossing the cut), or the cut module runs twice or not at all.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence

from torch import fx, nn

from fcfd_viz.errors import UserError
from fcfd_viz.models.base import Head, StagedNet
from fcfd_viz.models.torchvision_zoo import fit_classes


class _CutTracer(fx.Tracer):
    """torch.fx's tracer, keeping the cut modules whole (one ``call_module`` node each)."""

    def __init__(self, keep: set[str]) -> None:
        super().__init__()
        self.keep = keep

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return module_qualified_name in self.keep or super().is_leaf_module(
            m, module_qualified_name
        )


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _trace(module: nn.Module, cut_points: list[str]) -> fx.Graph:
    known = dict(module.named_modules())
    for cut in cut_points:
        if cut not in known or not cut:
            close = difflib.get_close_matches(cut, [n for n in known if n], n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise UserError(f"cut point {cut!r} is no module of {type(module).__name__}{hint}")
    if len(set(cut_points)) != len(cut_points):
        raise UserError(f"cut points {cut_points} name a module twice")
    for cut in cut_points:
        outer = [c for c in cut_points if cut.startswith(c + ".")]
        if outer:
            raise UserError(f"cannot cut at {cut!r}: it is inside the cut point {outer[0]!r}")
    try:
        return _CutTracer(set(cut_points)).trace(module)
    except Exception as e:  # data-dependent control flow and the like
        raise UserError(
            f"cannot trace {type(module).__name__} with torch.fx ({_first_line(e)}); "
            "give its stages by hand with models.from_stages"
        ) from None


def _cut_nodes(graph: fx.Graph, cut_points: list[str], pos: dict) -> list[fx.Node]:
    nodes = []
    for cut in cut_points:
        calls = [n for n in graph.nodes if n.op == "call_module" and n.target == cut]
        if len(calls) != 1:
            why = "is never called by forward" if not calls else f"runs {len(calls)} times"
            raise UserError(f"cannot cut at {cut!r}: the module {why}; cut at a module run once")
        nodes.append(calls[0])
    for a, b in zip(nodes, nodes[1:]):
        if pos[b] < pos[a]:
            raise UserError(
                f"cannot cut at {b.target!r} after {a.target!r}: forward runs it first; "
                "give the cut points in the order forward runs them"
            )
    return nodes


def _check_chain(nodes: list[fx.Node], pos: dict, cut: fx.Node, name: str) -> None:
    """Nothing after ``cut`` reads a value computed before it (parameters aside)."""
    for n in nodes[pos[cut] + 1 :]:
        for m in n.all_input_nodes:
            if pos[m] < pos[cut] and m.op != "get_attr":
                what = "the input" if m.op == "placeholder" else f"{m.name!r}"
                raise UserError(
                    f"cannot cut at {name!r}: {what}, computed before it, is read after it by "
                    f"{n.name!r} (a skip connection crosses the cut); cut where the block ends"
                )


def _segment(root: nn.Module, nodes: list[fx.Node], pos: dict, start, end) -> fx.GraphModule:
    """The graph from ``start``'s output (the segment's input) to ``end``'s, as a module."""
    g = fx.Graph()
    env = {start: g.placeholder("x")}
    for n in nodes[pos[start] + 1 : pos[end] + 1]:
        for m in n.all_input_nodes:
            if m not in env:  # a parameter fetched before the cut
                env[m] = g.node_copy(m)
        env[n] = g.node_copy(n, lambda m: env[m])
    g.output(env[end])
    return fx.GraphModule(root, g)


def stage(
    module: nn.Module,
    cut_points: Sequence[str],
    num_classes: int | None = None,
    arch: str = "custom",
    post_relu: bool = True,
) -> StagedNet:
    """``module`` cut after each of ``cut_points`` (module names, as ``named_modules`` gives
    them, in the order forward runs them) into a :class:`StagedNet`; no code to write::

        net = models.stage(torchvision.models.resnet18(), ["maxpool", "layer1", "layer2",
                                                           "layer3", "layer4"])

    The parameters are shared with ``module``. When forward ends in an ``nn.Linear``, it is
    the head's ``fc`` (a fresh one when ``num_classes`` differs) and what runs between the
    last cut and it the head's ``pool``; otherwise the whole rest is ``pool`` and ``fc`` is
    the identity (then pass ``num_classes``). ``post_relu``: as in :func:`from_stages`.
    Python control flow in forward is fixed when it is traced (``if self.training``
    included); built-in modules (dropout, batch norm) keep their train/eval behaviour.
    Register a builder that calls this to make checkpoints load by ``arch``.
    """
    cut_points = list(cut_points)
    if not cut_points:
        raise UserError("stage needs at least one cut point (a module name)")
    graph = _trace(module, cut_points)
    nodes = list(graph.nodes)
    pos = {n: i for i, n in enumerate(nodes)}
    inputs = [n for n in nodes if n.op == "placeholder"]
    output = next(n for n in nodes if n.op == "output")
    if len(inputs) != 1 or not isinstance(output.args[0], fx.Node):
        raise UserError(
            f"stage needs a forward of one tensor to one tensor ({type(module).__name__})"
        )
    cuts = _cut_nodes(graph, cut_points, pos)
    last, out = cuts[-1], output.args[0]
    fc: nn.Module = nn.Identity()
    head_end = out
    if out.op == "call_module" and pos[out] > pos[last]:
        linear = module.get_submodule(str(out.target))
        if isinstance(linear, nn.Linear) and isinstance(out.args[0], fx.Node):
            num_classes = linear.out_features if num_classes is None else num_classes
            fc, head_end = fit_classes(linear, num_classes), out.args[0]
    if num_classes is None:
        raise UserError("forward does not end in an nn.Linear: pass num_classes to stage")
    for name, cut in zip(cut_points, cuts):
        _check_chain(nodes, pos, cut, name)
    if head_end is not out:
        _check_chain(nodes, pos, head_end, f"the input of {out.target}")
    starts = [inputs[0], *cuts]
    stages = [_segment(module, nodes, pos, a, b) for a, b in zip(starts, cuts)]
    pool = _segment(module, nodes, pos, last, head_end)  # (N, C, H, W) -> (N, D)
    head = Head(0, num_classes, relu=False, pool=pool, fc=fc)
    return StagedNet(
        stages, head, arch=arch, num_classes=num_classes, post_relu=post_relu, arch_kwargs={}
    )
