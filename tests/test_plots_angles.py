"""Chapter 8's figures: the angle distribution by percentiles and the margin x scale grid,
drawn from what they are given, and legible on a phone (text at least 8 px once a figure of
the chapter's width is scaled to a 358 px column)."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from camri_utils import plots  # noqa: E402

PHONE_COLUMN_PX = 358
MIN_TEXT_PX = 8.0


def smallest_phone_text_px(fig):
    """The smallest text of ``fig``, in px, once a phone scales the figure to its column
    (points at 72 per inch of the figure's width)."""
    fig.canvas.draw()
    sizes = [t.get_fontsize() for t in fig.findobj(matplotlib.text.Text) if t.get_visible() and t.get_text()]
    shown_px = min(PHONE_COLUMN_PX, fig.get_figwidth() * 96)  # a browser draws 96 px per inch
    return min(sizes) * shown_px / (fig.get_figwidth() * 72)


def _quantile_frame():
    return pd.DataFrame({"all_q5": [10.0, 20.0], "all_q25": [20.0, 30.0], "all_q50": [25.0, 35.0],
                         "all_q75": [30.0, 45.0], "all_q95": [80.0, 90.0],
                         "correct_q5": [9.0, 19.0], "correct_q25": [18.0, 28.0], "correct_q50": [22.0, 33.0],
                         "correct_q75": [27.0, 40.0], "correct_q95": [50.0, 60.0]},
                        index=["control", "CAMRI"])


def test_angle_quantiles_draw_the_five_percentiles_of_each_group_and_row():
    frame = _quantile_frame()
    fig, ax = plt.subplots(figsize=(5.2, 3.0))
    plots.draw_angle_quantiles(ax, frame)
    segments = [(tuple(line.get_xdata()), round(float(np.mean(line.get_ydata())), 6), line.get_linewidth())
                for line in ax.get_lines()]
    # Per row and group: tails (thin), middle half (thick), median tick (vertical).
    for row, y in ((0, 0.0), (1, 1.0)):
        for group, offset in (("all", -0.16), ("correct", 0.16)):
            q = frame.iloc[row][[f"{group}_q{p}" for p in (5, 25, 50, 75, 95)]].to_numpy()
            yy = round(y + offset, 6)
            assert ((q[0], q[4]), yy, 1.2) in segments
            assert ((q[1], q[3]), yy, 6.0) in segments
            assert any(s[0] == (q[2], q[2]) and s[1] == yy for s in segments)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["control", "CAMRI"]
    assert ax.get_ylim()[0] > ax.get_ylim()[1]  # the first row on top
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["all images", "correctly classified images"]
    assert smallest_phone_text_px(fig) >= MIN_TEXT_PX
    plt.close(fig)


def test_angle_quantiles_skip_rows_without_values_and_refuse_bad_input():
    frame = _quantile_frame()
    frame.loc["CAMRI", "correct_q5"] = np.nan  # no correctly classified image: nothing drawn
    fig, ax = plt.subplots()
    plots.draw_angle_quantiles(ax, frame, legend=False)
    assert len(ax.get_lines()) == 3 * 3 and ax.get_legend() is None
    with pytest.raises(ValueError, match="lacks the columns"):
        plots.draw_angle_quantiles(ax, frame.drop(columns="all_q95"))
    with pytest.raises(ValueError, match="five increasing percentiles"):
        plots.draw_angle_quantiles(ax, frame, quantiles=(5, 50, 95))
    with pytest.raises(ValueError, match="five increasing percentiles"):
        plots.draw_angle_quantiles(ax, frame, quantiles=(95, 75, 50, 25, 5))
    with pytest.raises(ValueError, match="at least one group"):
        plots.draw_angle_quantiles(ax, frame, groups=())
    with pytest.raises(ValueError, match="as many colours"):
        plots.draw_angle_quantiles(ax, frame, colors=["k"])
    plt.close(fig)


def _sweep_frame():
    rows = []
    for scale in (8.0, 16.0):
        for deno in (0.0, 4.0):
            rows.append({"scale": scale, "margin_pi64": deno, "n_seeds": 3,
                         "maintains_accuracy": scale == 8.0,
                         "ce_accuracy_gap": 0.001 * deno - 0.002 * (scale == 16.0),
                         "control_accuracy_gap": np.nan if deno == 0 else 0.0025,
                         "control_above": np.nan if deno == 0 else 2})
    return pd.DataFrame(rows)


def test_sweep_grid_writes_values_in_points_outlines_kept_cells_and_leaves_undefined_blank():
    frame = _sweep_frame()
    fig, (a, b) = plt.subplots(2, 1, figsize=(5.2, 5.4))
    plots.draw_sweep_grid(a, frame, "ce_accuracy_gap", percent=True)
    texts = sorted(t.get_text() for t in a.texts)
    assert texts == sorted(["+0.00\nn=3", "+0.40\nn=3", "-0.20\nn=3", "+0.20\nn=3"])
    image = a.get_images()[0].get_array()
    assert image[0, 1] == pytest.approx(0.4) and image[1, 0] == pytest.approx(-0.2)  # rows: s, columns: m
    assert len(a.patches) == 2  # the two cells at s = 8 keep accuracy
    assert [t.get_text() for t in a.get_xticklabels()] == ["0", "4"]
    plots.draw_sweep_grid(b, frame, "control_accuracy_gap", label=lambda r: f"{int(r.control_above)} above")
    assert sorted(t.get_text() for t in b.texts) == ["+0.003\n2 above"] * 2  # m = 0 undefined: blank
    assert smallest_phone_text_px(fig) >= MIN_TEXT_PX
    with pytest.raises(ValueError, match="no column 'nope'"):
        plots.draw_sweep_grid(a, frame, "nope")
    plt.close(fig)


def test_tradeoff_figure_keeps_legend_out_of_the_data_every_marker_in_and_labels_apart():
    """Two scales of one method get two markers and two legend entries; the legend is the
    figure's, below the axes; every marker (with its bars) lies inside the axes; no two setting
    labels overlap, even for settings that nearly coincide."""
    import json

    import pandas as pd

    from camri_utils import protocol

    rows = []
    for seed in (0, 1):
        rows.append({"method": "CE", "role": "r", "important_class": 1, "setting": "", "seed": seed,
                     "accuracy": 0.90 + 0.004 * seed, "recall": 0.30, "precision": 0.9,
                     "sel_accuracy": 0.9, "sel_recall": 0.3})
        for scale in (16.0, 8.0):
            for d in (2, 4, 6, 8):  # near-coincident points: their labels would overlap where drawn
                rows.append({"method": "CAMRI", "role": "r", "important_class": 1,
                             "setting": json.dumps({"margin": d * np.pi / 64, "scale": scale}, sort_keys=True),
                             "seed": seed, "accuracy": 0.895 + 0.0002 * d, "recall": 0.40 + 0.001 * d,
                             "precision": 0.8, "sel_accuracy": 0.9, "sel_recall": 0.4})
    frame = pd.DataFrame(rows)
    sel = protocol.Selection({("CAMRI", "r"): None}, [], {"r": 1}, [1, 0], 0.85, "validation")
    fig, ax = plt.subplots(figsize=(5.2, 4.2))
    plots.draw_tradeoff(ax, frame, sel, "r")
    fig.canvas.draw()
    assert ax.get_legend() is None and len(fig.legends) == 1  # the figure's legend, outside the axes
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "CAMRI (other settings, s = 16)" in labels and "CAMRI (other settings, s = 8)" in labels
    markers = {line.get_label(): line.get_marker() for line in ax.lines}
    assert markers["CAMRI (other settings, s = 16)"] != markers["CAMRI (other settings, s = 8)"]
    legend_box = fig.legends[0].get_window_extent()
    assert not legend_box.overlaps(ax.get_window_extent())
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    for line in ax.lines:
        for x, y in zip(line.get_xdata(), line.get_ydata()):
            if line.get_marker() not in (None, "None", ""):
                assert x0 < x < x1 and y0 < y < y1
    ce_bar = ax.containers[0]  # CE's error bars, one standard deviation over seeds
    assert x0 < 0.902 - np.std([0.90, 0.904], ddof=1) and 0.902 + np.std([0.90, 0.904], ddof=1) < x1
    boxes = [t.get_window_extent() for t in ax.texts]
    assert len(boxes) == 8
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
    assert ce_bar.get_label() == "CE"
    plt.close(fig)
