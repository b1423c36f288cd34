"""The model and cut pickers the Sensitivity and Perturbation pages share."""

from __future__ import annotations

from pathlib import Path

import models_state
import state
import streamlit as st
from probe_state import Source, sources


def cut_picker(src: Source, net, column, key: str) -> tuple[int | None, str | None]:
    """The cut of ``net`` picked in ``column``: a stage of a run's staged network (widget key
    ``{key}_stage``), else a layer of any other model (``{key}_layer``); ``(stage, layer)``."""
    from fcfd_viz.models.input_size import checkpoint_input_size
    from fcfd_viz.models.sources import default_layer, layer_names

    if src.kind == "run":
        size = checkpoint_input_size(models_state.model(src.name)[1])
        chans = net.stage_channels([3, size, size])
        stage = column.selectbox(
            "Stage (cut after)",
            list(range(net.num_stages)),
            index=min(2, net.num_stages - 1),
            format_func=lambda i: f"{i} ({chans[i]} ch)",
            key=f"{key}_stage",
        )
        return stage, None
    layers = layer_names(net)
    state.keep_valid(f"{key}_layer", layers)
    index = layers.index(default_layer(net))
    return None, column.selectbox("Layer (cut after)", layers, index=index, key=f"{key}_layer")


def pick_source(root: Path, column, key: str) -> Source:
    """The model picked in ``column`` (widget key ``key``), the default teacher first; stops
    the page with a hint when ``root`` holds nothing to probe."""
    srcs = sources(root)
    if not srcs:
        st.info(
            f"No checkpoints in `{root}` yet: build the default runs on the Home page (pretrained "
            "torchvision weights in the torch hub cache and your `--import` models show here too)."
        )
        st.stop()
    labels = [s.label for s in srcs]
    teacher = (root / state.default_runs(root)["teacher"]).resolve()
    first = next((i for i, s in enumerate(srcs) if Path(s.name).resolve() == teacher), 0)
    return srcs[labels.index(column.selectbox("Model", labels, index=first, key=key))]
