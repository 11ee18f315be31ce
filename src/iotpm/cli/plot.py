"""``iotpm detect --plot``: each metric with its limits, baseline band and its own alarms.

An alarm is marked on the metric panels its reasons name (and a reading on a panel
whose metric itself scored at the clear level), never on every panel of the device;
a reason that names no metric (a gap in the data) is a vertical line on each panel.
The time axis is dated, in UTC.
"""

from __future__ import annotations

from typing import IO

import numpy as np

from iotpm.cli.detect import DeviceRun
from iotpm.detection import DetectorConfig


def plot_runs(runs: list[DeviceRun], metrics: list[str], config: DetectorConfig, out: IO[bytes]) -> int:
    """One panel per device and metric, written as a PNG; returns the number of panels."""
    import matplotlib

    matplotlib.use("Agg")
    from datetime import UTC

    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    drawn = [run for run in runs if run.plot is not None and len(run.plot.series.ts)]
    panels = [(run, j) for run in drawn for j in range(len(metrics))]
    if not panels:
        return 0
    c = len(metrics)
    fig, axes = plt.subplots(len(panels), 1, figsize=(12, 2.4 * len(panels)), squeeze=False)
    for ax, (run, j) in zip(axes[:, 0], panels, strict=True):
        data = run.plot
        assert data is not None
        t = data.series.ts.astype("datetime64[ms]")
        rows = data.series.rows
        value, expected, band = rows[:, j], rows[:, c + j], rows[:, 2 * c + j]
        ax.plot(t, value, lw=0.7, color="#333", label=metrics[j])
        ax.fill_between(t, expected - band, expected + band, color="#7aa6d6", alpha=0.3, label="baseline ±3σ")
        limits = config.thresholds.resolve(metrics[j], device_id=run.device, line=run.line, device_type=run.device_type)
        for limit in (limits.low, limits.high) if limits else ():
            if limit is not None:
                ax.axhline(limit, color="#c0392b", ls="--", lw=0.8)
        marks = data.marks[j]
        if len(marks.ts):
            ax.scatter(marks.ts.astype("datetime64[ms]"), marks.rows[:, 0], s=6, color="#e67e22",
                       label="in an alarm on this metric", zorder=3)  # fmt: skip
        mine = [(ts, v) for ts, k, v in data.raises if k == j]
        if mine:
            when = np.array([ts for ts, _ in mine], dtype="datetime64[ms]")
            ax.scatter(when, [v for _, v in mine], s=40, marker="v", color="#c0392b", label="raised", zorder=4)
        for ts, k, _ in data.raises:
            if k < 0:
                ax.axvline(np.datetime64(ts, "ms"), color="#888", lw=0.8, ls=":")
        span = f"{np.datetime_as_string(t[0], unit='m')}Z – {np.datetime_as_string(t[-1], unit='m')}Z"
        stride = f"; every {data.series.stride}th reading" if data.series.stride > 1 else ""
        ax.set_title(f"{run.device} · {metrics[j]}  ({span}{stride})", fontsize=9)
        locator = mdates.AutoDateLocator(tz=UTC)  # type: ignore[no-untyped-call]  # untyped in matplotlib
        ax.xaxis.set_major_locator(locator)
        formatter = mdates.ConciseDateFormatter(locator, tz=UTC)  # type: ignore[no-untyped-call]  # as above
        ax.xaxis.set_major_formatter(formatter)
        ax.set_xlabel("time (UTC)", fontsize=8)
        ax.legend(loc="upper left", fontsize=7)
    fig.tight_layout()
    fig.savefig(out, format="png", dpi=110)
    plt.close(fig)
    return len(panels)
