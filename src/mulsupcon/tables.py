"""Result tables (a building block: formatting only): Markdown for reports, aligned plain text for the terminal,
mean ± std over seeds.

A *metric dict* is what :func:`mulsupcon.metrics.evaluate` returns (extra keys such as ``protocol`` and
``thresholds`` are ignored here). A cell value may be

* a number -> formatted with ``digits`` decimals (``0.659``);
* a ``(mean, std)`` pair, as produced by :func:`aggregate` -> ``0.659 ± 0.004``;
* missing, ``None`` or nan -> ``-``.

Standard deviations from :func:`aggregate` use ``ddof=0`` by default (population std, numpy's default, the
usual "± over seeds" of papers); pass ``ddof=1`` for the sample std. With ``ddof=1`` and a single run the
std is undefined and reported as nan (shown as ``0.659 ± -``).
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

__all__ = [
    "METRIC_ORDER",
    "METRIC_LABELS",
    "format_value",
    "metrics_table",
    "aggregate",
    "aggregate_table",
    "side_by_side",
    "format_console_table",
]

#: The paper's column order (Tables 4-7): mAP, HA, example-F1, macro-F1, micro-F1, precision@1.
METRIC_ORDER: tuple[str, ...] = (
    "mAP",
    "hamming_accuracy",
    "example_f1",
    "macro_f1",
    "micro_f1",
    "precision_at_1",
)
#: Short column names.
METRIC_LABELS: dict[str, str] = {
    "mAP": "mAP",
    "hamming_accuracy": "HA",
    "example_f1": "ex-F1",
    "macro_f1": "ma-F1",
    "micro_f1": "mi-F1",
    "precision_at_1": "P@1",
}

MISSING = "-"


def _is_missing(v: Any) -> bool:
    return v is None or (isinstance(v, (float, np.floating)) and math.isnan(float(v)))


def format_value(value: Any, digits: int = 3) -> str:
    """One table cell: number -> ``f"{v:.{digits}f}"``, ``(mean, std)`` -> ``"mean ± std"``, missing -> ``-``."""
    if digits < 0:
        raise ValueError(f"digits must be >= 0, found {digits}")
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"a cell pair must be (mean, std), found {len(value)} values: {value!r}")
        mean, std = value
        if _is_missing(mean):
            return MISSING
        return f"{format_value(mean, digits)} ± {format_value(std, digits)}"
    if _is_missing(value):
        return MISSING
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        if hasattr(value, "item"):  # 0-d torch tensor / numpy array
            return format_value(value.item(), digits)
        raise ValueError(f"cannot format {type(value).__name__} value {value!r} as a number")
    return f"{float(value):.{digits}f}"


def _label(metric: str) -> str:
    return METRIC_LABELS.get(metric, metric)


def _cells(rows: Mapping[str, Mapping[str, Any]], metrics: Sequence[str], digits: int) -> list[list[str]]:
    if not isinstance(rows, Mapping):
        raise ValueError(f"rows must be a dict run name -> metric dict, found {type(rows).__name__}")
    out = []
    for name, row in rows.items():
        if not isinstance(row, Mapping):
            raise ValueError(f"row {name!r}: expected a dict metric -> value, found {type(row).__name__}")
        out.append([str(name)] + [format_value(row.get(m), digits) for m in metrics])
    return out


def markdown_table(header: list[str], body: list[list[str]], title: str | None, right: Sequence[bool]) -> str:
    """A Markdown table of ready-made cells: ``header`` (K names), ``body`` (rows of K strings), an optional bold
    ``title`` line above, ``right`` (K flags) for the columns aligned right (numbers)."""
    lines = []
    if title:
        lines += [f"**{title}**", ""]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "|".join("---:" if r else "---" for r in right) + "|")
    lines += ["| " + " | ".join(r) + " |" for r in body]
    return "\n".join(lines)


def metrics_table(
    rows: Mapping[str, Mapping[str, Any]],
    metrics: Sequence[str] = METRIC_ORDER,
    digits: int = 3,
    title: str | None = None,
) -> str:
    """Markdown table, one row per run, one column per metric (paper order by default).

    Args:
        rows: run name -> metric dict (values: numbers, ``(mean, std)`` pairs, None; other keys ignored).
        metrics: columns to show, in order.
        digits: decimals.
        title: optional bold line above the table.
    Returns:
        The table (no trailing newline).
    """
    header = ["run"] + [_label(m) for m in metrics]
    return markdown_table(header, _cells(rows, metrics, digits), title, [False] + [True] * len(metrics))


def aggregate(
    runs: Iterable[Mapping[str, Any]], metrics: Sequence[str] | None = None, ddof: int = 0
) -> dict[str, tuple[float, float]]:
    """Mean and standard deviation of each metric over runs (e.g. seeds).

    Args:
        runs: metric dicts, one per run.
        metrics: metrics to aggregate; default: every key whose value is a number in all runs.
        ddof: delta degrees of freedom of the std (0: population std, default; 1: sample std).
    Returns:
        metric -> (mean, std). nan values of a run propagate (a metric undefined in one run has mean nan).
    """
    runs = list(runs)
    if not runs:
        raise ValueError("aggregate: no runs given (need at least one metric dict)")
    for i, r in enumerate(runs):
        if not isinstance(r, Mapping):
            raise ValueError(f"aggregate: run {i} is a {type(r).__name__}, expected a dict metric -> value")

    def numeric(v: Any) -> bool:
        return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))

    if metrics is None:
        metrics = [k for k, v in runs[0].items() if numeric(v) and all(numeric(r.get(k)) for r in runs[1:])]
    out: dict[str, tuple[float, float]] = {}
    for m in metrics:
        vals = []
        for i, r in enumerate(runs):
            if m not in r:
                raise ValueError(f"aggregate: run {i} has no metric {m!r} (its keys: {', '.join(map(str, r))})")
            if not numeric(r[m]):
                raise ValueError(f"aggregate: run {i}, metric {m!r}: expected a number, found {r[m]!r}")
            vals.append(float(r[m]))
        a = np.asarray(vals)
        std = float(a.std(ddof=ddof)) if len(a) > ddof else float("nan")
        out[m] = (float(a.mean()), std)
    return out


def aggregate_table(
    runs: Mapping[str, Iterable[Mapping[str, Any]]],
    metrics: Sequence[str] = METRIC_ORDER,
    digits: int = 3,
    title: str | None = None,
    ddof: int = 0,
) -> str:
    """Markdown table of ``mean ± std`` per run group (e.g. one row per method, std over its seeds).

    Args:
        runs: row name -> list of metric dicts (one per seed).
        metrics: columns, in order.
        digits: decimals of both mean and std.
        title: optional bold line above the table.
        ddof: see :func:`aggregate`.
    Returns:
        The table; a metric missing from the runs is shown as ``-``.
    """
    rows = {}
    for name, group in runs.items():
        group = list(group)
        present = [m for m in metrics if all(m in r for r in group)]
        rows[name] = aggregate(group, present, ddof=ddof)
    return metrics_table(rows, metrics, digits, title)


def side_by_side(
    ours: Mapping[str, Any],
    reference: Mapping[str, Any],
    metrics: Sequence[str] = METRIC_ORDER,
    digits: int = 3,
    names: tuple[str, str] = ("ours", "paper"),
    title: str | None = None,
) -> str:
    """Markdown table putting our numbers next to published ones, one row per metric.

    Args:
        ours: metric -> number or ``(mean, std)``.
        reference: metric -> published number (missing metrics shown as ``-``).
        metrics: rows, in order.
        digits: decimals.
        names: column titles for ``ours`` and ``reference``.
        title: optional bold line above the table.
    Returns:
        Table with columns metric | ours | reference | diff, where diff = our mean - reference
        (signed, ``-`` when either is missing).
    """

    def mean_of(v: Any) -> Any:
        return v[0] if isinstance(v, (tuple, list)) else v

    body = []
    for m in metrics:
        a, b = ours.get(m), reference.get(m)
        ma, mb = mean_of(a), mean_of(b)
        if _is_missing(ma) or _is_missing(mb):
            diff = MISSING
        else:
            diff = f"{float(ma) - float(mb):+.{digits}f}"
        body.append([_label(m), format_value(a, digits), format_value(b, digits), diff])
    return markdown_table(["metric", names[0], names[1], "diff"], body, title, [False, True, True, True])


def per_label_table(label_names: Sequence[str], columns: Mapping[str, Sequence[Any]], digits: int = 3,
                    title: str | None = None) -> str:
    """Markdown table, one row per label: its name, then a column per entry of ``columns`` (column name ->
    (L,) values; integers as they are, other numbers to ``digits`` places, NaN as ``-``)."""
    body = []
    for j, name in enumerate(label_names):
        row = [str(name)]
        for values in columns.values():
            v = values[j]
            row.append(str(int(v)) if isinstance(v, (int, np.integer)) else format_value(float(v), digits))
        body.append(row)
    return markdown_table(["label", *columns], body, title, [False] + [True] * len(columns))


def format_console_table(
    rows: Mapping[str, Mapping[str, Any]],
    metrics: Sequence[str] = METRIC_ORDER,
    digits: int = 3,
    title: str | None = None,
) -> str:
    """Plain-text table with aligned columns for the terminal (used by ``mulsupcon demo``).

    Args:
        rows: run name -> metric dict, as for :func:`metrics_table`.
        metrics: columns, in order.
        digits: decimals.
        title: optional first line.
    Returns:
        Lines: [title,] header, a rule of dashes, one line per run; names left-aligned, numbers right-aligned.
    """
    header = ["run"] + [_label(m) for m in metrics]
    body = _cells(rows, metrics, digits)
    widths = [max(len(r[i]) for r in [header] + body) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = [c.rjust(w) for c, w in zip(cells[1:], widths[1:])]
        return "  ".join([first] + rest).rstrip()

    lines = [title] if title else []
    lines += [line(header), "  ".join("-" * w for w in widths)]
    lines += [line(r) for r in body]
    return "\n".join(lines)
