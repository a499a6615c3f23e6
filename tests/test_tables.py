"""Tests of mulsupcon.tables: table contents, rounding, alignment, mean ± std against numpy."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mulsupcon.metrics import evaluate
from mulsupcon.tables import (
    METRIC_LABELS,
    METRIC_ORDER,
    aggregate,
    aggregate_table,
    format_console_table,
    format_value,
    metrics_table,
    side_by_side,
)

RUN_A = {
    "mAP": 0.50649,
    "hamming_accuracy": 0.8025,
    "example_f1": 0.66849,
    "macro_f1": 0.4741,
    "micro_f1": 0.675,
    "precision_at_1": 0.77,
    "protocol": "paper",
    "thresholds": {"macro_f1": 0.2},
}
RUN_B = {"mAP": 0.466, "hamming_accuracy": 0.799, "example_f1": 0.654, "micro_f1": 0.663}


def _split_md(table: str) -> list[list[str]]:
    return [[c.strip() for c in line.strip("|").split("|")] for line in table.splitlines() if line.startswith("|")]


def test_constants() -> None:
    assert METRIC_ORDER == ("mAP", "hamming_accuracy", "example_f1", "macro_f1", "micro_f1", "precision_at_1")
    assert [METRIC_LABELS[m] for m in METRIC_ORDER] == ["mAP", "HA", "ex-F1", "ma-F1", "mi-F1", "P@1"]


def test_format_value() -> None:
    assert format_value(0.66849) == "0.668"
    assert format_value(0.66851, digits=2) == "0.67"
    assert format_value((0.6591, 0.0042)) == "0.659 ± 0.004"
    assert format_value(None) == "-" and format_value(float("nan")) == "-" and format_value((math.nan, 0.1)) == "-"
    assert format_value(np.float32(0.25), 1) == "0.2"  # round-half-even of the exact binary value
    assert format_value(np.array(0.125)) == "0.125"
    with pytest.raises(ValueError, match="cannot format str"):
        format_value("high")
    with pytest.raises(ValueError, match=r"\(mean, std\)"):
        format_value((1.0, 2.0, 3.0))


def test_metrics_table_markdown() -> None:
    table = metrics_table({"MulSupCon": RUN_A, "BCE": RUN_B}, title="yeast, paper protocol")
    lines = table.splitlines()
    assert lines[0] == "**yeast, paper protocol**"
    rows = _split_md(table)
    assert rows[0] == ["run", "mAP", "HA", "ex-F1", "ma-F1", "mi-F1", "P@1"]
    assert set(rows[1][1:]) == {"---:"} and rows[1][0] == "---"
    assert rows[2] == ["MulSupCon", "0.506", "0.802", "0.668", "0.474", "0.675", "0.770"]
    assert rows[3] == ["BCE", "0.466", "0.799", "0.654", "-", "0.663", "-"]  # missing -> "-"
    # column subset and order, more digits
    sub = _split_md(metrics_table({"a": RUN_A}, metrics=["micro_f1", "mAP"], digits=4))
    assert sub[0] == ["run", "mi-F1", "mAP"] and sub[2] == ["a", "0.6750", "0.5065"]


def test_metrics_table_from_evaluate_output() -> None:
    rng = np.random.default_rng(0)
    s, y = rng.random((40, 5)), rng.random((40, 5)) < 0.3
    r = evaluate(s, y, protocol="paper")
    rows = _split_md(metrics_table({"run": r}, digits=5))
    assert rows[2][1:] == [f"{r[m]:.5f}" for m in METRIC_ORDER]


def test_aggregate_against_numpy() -> None:
    rng = np.random.default_rng(1)
    runs = [{m: float(rng.random()) for m in METRIC_ORDER} | {"protocol": "paper", "mAP_classes": 14} for _ in range(4)]
    for ddof in (0, 1):
        agg = aggregate(runs, ddof=ddof)
        assert "protocol" not in agg and agg["mAP_classes"] == (14.0, 0.0)
        for m in METRIC_ORDER:
            vals = np.array([r[m] for r in runs])
            assert agg[m][0] == pytest.approx(vals.mean(), abs=1e-15)
            assert agg[m][1] == pytest.approx(vals.std(ddof=ddof), abs=1e-15)
    assert aggregate(runs)["mAP"][1] < aggregate(runs, ddof=1)["mAP"][1]
    one = aggregate(runs[:1], ddof=1)  # single run: sample std undefined
    assert math.isnan(one["mAP"][1]) and aggregate(runs[:1])["mAP"][1] == 0.0


def test_aggregate_errors() -> None:
    with pytest.raises(ValueError, match="no runs"):
        aggregate([])
    with pytest.raises(ValueError, match="run 1 has no metric 'macro_f1'"):
        aggregate([RUN_A, RUN_B], metrics=["macro_f1"])
    with pytest.raises(ValueError, match="run 0, metric 'protocol'"):
        aggregate([RUN_A], metrics=["protocol"])


def test_aggregate_table() -> None:
    seeds = [{"mAP": 0.50, "example_f1": 0.655}, {"mAP": 0.51, "example_f1": 0.663}, {"mAP": 0.52, "example_f1": 0.659}]
    table = aggregate_table({"MulSupCon": seeds}, metrics=["mAP", "example_f1", "macro_f1"])
    row = _split_md(table)[2]
    sd_map = np.std([0.50, 0.51, 0.52])
    sd_ex = np.std([0.655, 0.663, 0.659])
    assert row == ["MulSupCon", f"0.510 ± {sd_map:.3f}", f"0.659 ± {sd_ex:.3f}", "-"]
    assert row[1] == "0.510 ± 0.008" and row[2] == "0.659 ± 0.003"


def test_side_by_side() -> None:
    paper = {"hamming_accuracy": 0.799, "example_f1": 0.659, "macro_f1": 0.475, "micro_f1": 0.667}
    ours = {"mAP": 0.506, "hamming_accuracy": 0.803, "example_f1": (0.6591, 0.004)}
    ours |= {"macro_f1": 0.474, "micro_f1": 0.675}
    rows = _split_md(side_by_side(ours, paper, names=("ours (1 seed)", "paper T2/3")))
    assert rows[0] == ["metric", "ours (1 seed)", "paper T2/3", "diff"]
    body = {r[0]: r[1:] for r in rows[2:]}
    assert list(body) == ["mAP", "HA", "ex-F1", "ma-F1", "mi-F1", "P@1"]
    assert body["mAP"] == ["0.506", "-", "-"]
    assert body["HA"] == ["0.803", "0.799", "+0.004"]
    assert body["ex-F1"] == ["0.659 ± 0.004", "0.659", "+0.000"]
    assert body["ma-F1"] == ["0.474", "0.475", "-0.001"]
    assert body["P@1"] == ["-", "-", "-"]


def test_console_table_alignment() -> None:
    text = format_console_table({"MulSupCon (paper)": RUN_A, "BCE": RUN_B}, title="yeast")
    lines = text.splitlines()
    assert lines[0] == "yeast"
    header, rule, a, b = lines[1:]
    assert header.split() == ["run", "mAP", "HA", "ex-F1", "ma-F1", "mi-F1", "P@1"]
    assert set(rule.replace(" ", "")) == {"-"}
    assert a.startswith("MulSupCon (paper)") and b.startswith("BCE ")
    assert a.split()[-6:] == ["0.506", "0.802", "0.668", "0.474", "0.675", "0.770"]
    assert b.split()[-6:] == ["0.466", "0.799", "0.654", "-", "0.663", "-"]
    # numbers are right-aligned: every column ends at the same character position in every line
    assert len(a) == len(b) == len(header) == len(rule)
    ends_a = [i for i in range(1, len(a) + 1) if i == len(a) or (a[i - 1] != " " and a[i] == " ")]
    ends_b = [i for i in range(1, len(b) + 1) if i == len(b) or (b[i - 1] != " " and b[i] == " ")]
    assert ends_a[-6:] == ends_b[-6:]


def test_bad_rows() -> None:
    with pytest.raises(ValueError, match="row 'x': expected a dict"):
        metrics_table({"x": [0.1, 0.2]})
    with pytest.raises(ValueError, match="rows must be a dict"):
        format_console_table([RUN_A])
