"""``iotpm detect --plot``: each metric with its limits, baseline band and alarms."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from iotpm.cli.detect import DeviceRun


def plot_runs(runs: list[DeviceRun], out: Path) -> None:
    """One panel per device and metric, written as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(run, j) for run in runs for j in range(len(run.metrics))]
    fig, axes = plt.subplots(len(panels), 1, figsize=(12, 2.4 * len(panels)), squeeze=False, sharex=False)
    for ax, (run, j) in zip(axes[:, 0], panels, strict=True):
        t = run.ts.astype("datetime64[ms]")
        r = run.result
        ax.plot(t, run.values[:, j], lw=0.7, color="#333", label=run.metrics[j])
        band = 3.0 * r.scale[:, j]
        ax.fill_between(
            t, r.expected[:, j] - band, r.expected[:, j] + band, color="#7aa6d6", alpha=0.3, label="baseline ±3σ"
        )
        limits = run.config.thresholds.resolve(run.metrics[j], device_id=run.device)
        for value in (limits.low, limits.high) if limits else ():
            if value is not None:
                ax.axhline(value, color="#c0392b", ls="--", lw=0.8)
        flagged = np.flatnonzero(r.is_anomaly)
        ax.scatter(t[flagged], run.values[flagged, j], s=6, color="#e67e22", label="alarm active", zorder=3)
        raises = [e.index for e in r.events if e.kind == "raise"]
        ax.scatter(t[raises], run.values[raises, j], s=40, marker="v", color="#c0392b", label="raised", zorder=4)
        ax.set_title(f"{run.device} · {run.metrics[j]}", fontsize=9)
        ax.legend(loc="upper left", fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
