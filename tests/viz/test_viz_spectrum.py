"""Figures of the error spectrum (fcfd_viz.viz.spectrum) on results with known numbers."""

from __future__ import annotations

import pytest

from fcfd_viz.analysis.gap.spectra import SpectrumEntry, SpectrumResult, predictors
from fcfd_viz.viz.spectrum import predictor_figure, share_figure


def result(offset: float) -> SpectrumResult:
    """Two stages, k = 3; kd's error spreads like an isotropic one, fcfd's avoids the top."""

    def entry(method: str, share: list[float], scale: float) -> SpectrumEntry:
        means = {"l2": [1.0 * scale, 2.0], "fisher": [0.1 * scale, 0.3], "kl": [0.2 * scale, 0.5]}
        return SpectrumEntry(method, "fitted", method, means, [share, share], [[0.1, 0.2, 0.3]] * 2)

    return SpectrumResult(
        "eval",
        [1, 2],
        16,
        {
            "kd (fitted)": entry("kd", [0.1 + offset, 0.2, 0.3], 1.0 + offset),
            "fcfd (fitted)": entry("fcfd", [0.01, 0.02 + offset, 0.05], 0.5 + offset),
        },
    )


def test_share_figure_shows_mean_and_std_over_seeds_against_the_isotropic_line():
    fig = share_figure([result(0.0), result(0.2)])
    assert len(fig.data) == 2 * 3  # per stage: the isotropic line and two methods
    iso = fig.data[0]
    assert iso.line.dash == "dash" and list(iso.y) == [0.1, 0.2, 0.3]
    kd = next(t for t in fig.data if t.name.startswith("kd"))
    assert kd.name == "kd (fitted) · 2 seeds"
    assert list(kd.y) == pytest.approx([0.2, 0.2, 0.3])
    # the sample std of 0.1 and 0.3
    assert list(kd.error_y.array) == pytest.approx([0.02**0.5, 0, 0])


def test_predictor_figure_titles_carry_the_spearman():
    results = [result(0.0), result(0.2), result(0.4)]
    p = predictors(results, boot=50)
    fig = predictor_figure(results, p)
    titles = [a.text for a in fig.layout.annotations]
    assert titles[0].startswith(f"l2 vs KL: Spearman {p['l2']['spearman']:.2f}")
    assert titles[1].startswith(f"fisher vs KL: Spearman {p['fisher']['spearman']:.2f}")
    assert sum(t.showlegend for t in fig.data) == 2  # one legend entry per method
