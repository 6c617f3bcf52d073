"""Figures of amcee eval (redrawn from the shipped model's eval.json) and of amcee report."""
import json
import re
import struct

import numpy as np
import pytest


@pytest.fixture(scope="module")
def shipped(repo_root):
    path = repo_root / "docs" / "default-model" / "eval.json"
    return path, json.loads(path.read_text())


@pytest.fixture(scope="module")
def drawn(shipped):
    """Every eval figure of the shipped report, kept open: {file name: Figure}."""
    import os
    import tempfile

    from gnuradio.amcee.training import eval_plots

    plt = eval_plots._pyplot()
    out = tempfile.mkdtemp()
    figures = {}
    for make in eval_plots.FIGURES:
        name = os.path.basename(make(plt, shipped[1], out))
        figures[name] = plt.gcf()
    yield figures
    plt.close("all")


def _png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n", path
    return struct.unpack(">II", head[16:24])


def _legend_labels(fig):
    legends = [ax.get_legend() for ax in fig.axes] + list(fig.legends)
    return [t.get_text() for leg in legends if leg is not None for t in leg.get_texts()]


def test_replot_writes_every_figure_from_a_saved_report(shipped, tmp_path):
    from gnuradio.amcee.training.eval_plots import main

    assert main([str(shipped[0]), "--out", str(tmp_path)]) == 0
    names = {"fig4a_accuracy.png", "fig4b_exit_shares.png", "fig4c_time.png", "fig5_exit_accuracy.png",
             "fig6_thresholds.png", "confusion.png", "frontier.png"}
    assert {p.name for p in tmp_path.iterdir()} == names
    for name in names:
        width, height = _png_size(tmp_path / name)
        assert width >= 500 and height >= 400 and width / height < 2.5, (name, width, height)


def test_replot_names_a_file_that_is_not_an_eval_report(tmp_path):
    from gnuradio.amcee.training.eval_plots import replot

    (tmp_path / "bench.json").write_text(json.dumps({"per_snr": [], "exit_names": []}))
    with pytest.raises(ValueError, match=r"bench.json is not an amcee eval report \(no paper_thresholds"):
        replot(str(tmp_path / "bench.json"))
    with pytest.raises(ValueError, match="cannot read eval report"):
        replot(str(tmp_path / "missing.json"))


def test_accuracy_is_in_percent_on_every_figure(drawn):
    accuracy_axes = 0
    for name, fig in drawn.items():
        for ax in fig.axes:
            if ax.get_ylabel().startswith("accuracy"):
                accuracy_axes += 1
                assert ax.get_ylabel() == "accuracy (%)", name
                ys = np.concatenate([line.get_ydata() for line in ax.get_lines() if len(line.get_ydata())])
                assert np.nanmax(ys) > 1.5, f"{name}: accuracy drawn as a fraction"
    assert accuracy_axes == 5  # 4a, 5, 6c, 6d, frontier


def test_legend_labels_read(drawn, shipped):
    from gnuradio.amcee.training.eval_plots import model_thresholds_label

    labels = [label for fig in drawn.values() for label in _legend_labels(fig)]
    for label in labels:
        words = re.findall(r"[\w.=]+", label)
        pairs = list(zip(words, words[1:]))
        assert len(pairs) == len(set(pairs)), f"legend label repeats itself: {label!r}"
    # The shipped model has a threshold per class: one phrase, not one per exit.
    assert model_thresholds_label(shipped[1]) == "early exit (model's class thresholds)"
    assert model_thresholds_label({"thresholds": [0.2, 0.35]}) == "early exit (model's T = 0.2, 0.35)"
    assert model_thresholds_label({"thresholds": [0.35, 0.35]}) == "early exit (model's T = 0.35 at every exit)"
    assert "early exit (model's class thresholds)" in _legend_labels(drawn["fig4a_accuracy.png"])


@pytest.mark.parametrize("name", ["fig4b_exit_shares.png", "fig5_exit_accuracy.png"])
def test_legend_is_outside_the_data_it_would_hide(drawn, name):
    fig = drawn[name]
    ax = fig.axes[0]
    renderer = fig.canvas.get_renderer()
    legend = ax.get_legend().get_window_extent(renderer)
    assert not legend.overlaps(ax.get_window_extent(renderer)), name


def test_confusion_matrix_has_a_percent_colour_bar(drawn):
    fig = drawn["confusion.png"]
    images = [ax for ax in fig.axes if ax.get_images()]
    assert len(images) == 2
    bars = [ax for ax in fig.axes if ax not in images]
    assert len(bars) == 1 and bars[0].get_ylabel() == "% of the true class's frames"
    assert images[0].get_images()[0].get_clim() == (0, 100)


def test_fig5_marks_points_resting_on_few_frames(drawn, shipped):
    from gnuradio.amcee.training.eval_plots import MIN_FRAMES

    r = shipped[1]
    expected = sorted(str(round(row["frames"] * row["exit_shares"][j]))
                      for row in r["per_snr"] for j in range(len(r["exit_names"]) - 1)
                      if 0 < round(row["frames"] * row["exit_shares"][j]) < MIN_FRAMES)
    ax = drawn["fig5_exit_accuracy.png"].axes[0]
    assert expected and sorted(t.get_text() for t in ax.texts) == expected
    assert f"fewer than {MIN_FRAMES} frames (count shown)" in _legend_labels(drawn["fig5_exit_accuracy.png"])


def test_fidelity_figure_is_a_grid_not_a_strip(tmp_path):
    from gnuradio.amcee.data.dataset import Dataset
    from gnuradio.amcee.data.synth.fidelity import plot_examples

    rng = np.random.default_rng(0)
    classes = tuple(f"C{i}" for i in range(10))
    labels = np.repeat(np.arange(10), 4)
    ds = Dataset(frames=rng.normal(0, 0.01, (40, 2, 128)).astype(np.float32), labels=labels,
                 snrs=np.tile(np.array([10.0, 20.0], dtype=np.float32), 20), classes=classes,
                 meta={"generator": "test", "variant": "awgn"})
    plot_examples(ds, tmp_path / "fidelity.png")
    width, height = _png_size(tmp_path / "fidelity.png")
    assert width / height < 2.0 and height >= 700, (width, height)
