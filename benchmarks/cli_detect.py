"""``iotpm detect`` on a long CSV: peak memory and time, against a shorter file and the import floor.

Writes a CSV of ``--rows`` rows (20 devices, their rows interleaved in time order as a
historian exports them; temperature, vibration, pressure; one device overheats half
way), then runs the command as a user does (a fresh process: ``iotpm detect FILE
--device-column device --out alarms.json --format json``), and in the same run:

* the same command on a file a tenth as long (memory must not grow with the rows),
* ``iotpm --version`` (the interpreter and the CLI's imports: the floor),
* a bare ``csv.reader`` pass over the long file (what reading the text costs at all).

Peak memory is the process's own high-water RSS (``VmHWM`` in /proc/self/status; Linux
keeps ``ru_maxrss`` across exec, so a child would report this script's own peak). Prints figures, then one
JSON object on the last line. Target: memory independent of the file's length, under 200 MB.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

DEVICES = 20
INTERVAL_S = 5
#: runs a command in-process and reports its peak RSS and exit code on the last line of stderr
_MEASURE = """
import json, resource, sys, time
t0 = time.perf_counter()
code = 0
try:
    from iotpm.cli.main import main
    main()
except SystemExit as exc:
    code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
peak = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:")) / 1024
use = resource.getrusage(resource.RUSAGE_SELF)  # CPU time starts at zero in a new process
figures = {"code": code, "peak_mb": peak, "seconds": time.perf_counter() - t0, "cpu_s": use.ru_utime + use.ru_stime}
print(json.dumps(figures), file=sys.stderr)
"""
_CSV_ONLY = """
import csv, json, sys, time
t0 = time.perf_counter()
with open(sys.argv[1], newline="") as fh:
    n = sum(1 for _ in csv.reader(fh))
peak = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:")) / 1024
print(json.dumps({"code": 0, "peak_mb": peak, "seconds": time.perf_counter() - t0, "rows": n - 1}), file=sys.stderr)
"""


def write_csv(path: Path, rows: int, seed: int = 1) -> None:
    """``rows`` rows over DEVICES devices, interleaved, one reading per device every 5 s."""
    rng = np.random.default_rng(seed)
    per = rows // DEVICES
    step = np.repeat(np.arange(per, dtype=np.int64), DEVICES)
    device = np.tile(np.arange(DEVICES), per)
    stamps = np.datetime_as_string(np.datetime64("2026-01-01T00:00:00") + step * INTERVAL_S, unit="s")
    values = np.array([55.0, 2.0, 90.0]) + rng.normal(0, 1, (len(step), 3)) * np.array([0.5, 0.1, 1.5])
    values[(device == 3) & (step >= per // 2), 0] += 30.0  # pump-0003 overheats half way
    with path.open("w", encoding="utf-8") as fh:
        fh.write("timestamp,device,temperature_c,vibration_mm_s,pressure_psi\n")
        for start in range(0, len(step), 100_000):
            part = slice(start, start + 100_000)
            rows = zip(stamps[part], device[part], values[part].tolist(), strict=True)
            fh.writelines(f"{t}Z,pump-{d:04d},{a:.3f},{b:.3f},{c:.3f}\n" for t, d, (a, b, c) in rows)


def measure(script: str, args: list[str], cwd: Path) -> dict[str, Any]:
    res = subprocess.run([sys.executable, "-c", script, *args], cwd=cwd, capture_output=True, text=True, check=False)
    figures: dict[str, Any] = json.loads(res.stderr.strip().splitlines()[-1])
    if figures["code"] != 0:
        raise RuntimeError(f"{args} exited {figures['code']}: {res.stderr[-2000:]}")
    figures["stdout"] = res.stdout
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3, help="runs of each command (the median is quoted)")
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="iotpm-bench-") as tmp:
        work = Path(tmp)
        long, short = work / "long.csv", work / "short.csv"
        write_csv(long, opts.rows)
        write_csv(short, opts.rows // 10)
        detect = ["detect", "--device-column", "device", "--out", "alarms.json", "--format", "json", "--no-progress"]
        results: dict[str, list[dict[str, Any]]] = {"long": [], "short": [], "floor": [], "csv_only": []}
        for _ in range(opts.runs):  # alternating, so a change in the machine's speed hits all alike
            results["long"].append(measure(_MEASURE, [*detect[:1], str(long), *detect[1:]], work))
            results["short"].append(measure(_MEASURE, [*detect[:1], str(short), *detect[1:]], work))
            results["floor"].append(measure(_MEASURE, ["--version"], work))
            results["csv_only"].append(measure(_CSV_ONLY, [str(long)], work))
        summary = json.loads(results["long"][-1]["stdout"])
        size_mb = long.stat().st_size / 1e6

    def med(name: str, key: str) -> float:
        return float(statistics.median(r[key] for r in results[name]))

    out = {
        "benchmark": "cli_detect",
        "rows": opts.rows,
        "file_mb": round(size_mb, 1),
        "devices": DEVICES,
        "runs": opts.runs,
        "peak_mb": round(med("long", "peak_mb"), 1),
        "peak_mb_tenth_file": round(med("short", "peak_mb"), 1),
        "peak_mb_import_floor": round(med("floor", "peak_mb"), 1),
        "seconds": round(med("long", "seconds"), 2),
        "seconds_tenth_file": round(med("short", "seconds"), 2),
        "cpu_seconds": round(med("long", "cpu_s"), 2),
        "cpu_seconds_tenth_file": round(med("short", "cpu_s"), 2),
        "seconds_csv_reader_only": round(med("csv_only", "seconds"), 2),
        "rows_per_second": round(opts.rows / med("long", "seconds")),
        "alarms": summary["alarms"],
        "analysed": summary["analysed"],
        "target_peak_mb": 200,
    }
    print(f"iotpm detect on {opts.rows:,} rows ({size_mb:.0f} MB, {DEVICES} devices x 3 metrics), "
          f"median of {opts.runs} runs")  # fmt: skip
    print(f"  peak RSS          {out['peak_mb']:8.1f} MB   (a tenth of the rows: {out['peak_mb_tenth_file']:.1f} MB; "
          f"imports only: {out['peak_mb_import_floor']:.1f} MB; target < 200 MB)")  # fmt: skip
    print(f"  time              {out['seconds']:8.2f} s    ({out['rows_per_second']:,} rows/s; a tenth of the rows: "
          f"{out['seconds_tenth_file']:.2f} s; csv.reader alone: {out['seconds_csv_reader_only']:.2f} s)")  # fmt: skip
    cpu, cpu_tenth = out["cpu_seconds"], out["cpu_seconds_tenth_file"]
    print(f"  CPU time          {cpu:8.2f} s    (a tenth of the rows: {cpu_tenth:.2f} s; wall time varies with load)")
    print(f"  alarms raised     {out['alarms']:8d}      over {out['analysed']:,} readings analysed")
    for name in ("long", "short"):
        each = [f"{r['peak_mb']:.0f} MB / {r['seconds']:.1f} s / {r['cpu_s']:.1f} s CPU" for r in results[name]]
        print(f"  runs ({name}): " + ", ".join(each))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
