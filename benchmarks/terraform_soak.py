"""Soak of the emulator check: ``scripts/terraform-local-check.sh`` N times in a row (not in CI).

Each run starts a fresh emulator, applies terraform/environments/local, expects a
no-change plan, destroys, and stops the emulator. With the provider's debug log kept
per run (``IOTPM_TF_LOG_DIR``), it also counts what could make an apply flake: requests
the provider's SDK sent again (``attempt=2``; the SDK has no response timeout, so a
retry follows a 5xx, a throttling code or a lost connection), answers with a 5xx, and
the slowest answer. Logs of failed runs are kept; the others are removed.

    nice python benchmarks/terraform_soak.py --runs 20 --keep /tmp/soak

Prints one line per run, then the pass count and the median timings, then one JSON
object. Baseline: the first run's figures, in the same soak (a drift up the runs
would show a leak across runs, e.g. ports or files left behind).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CHECK = ROOT / "scripts" / "terraform-local-check.sh"
RESPONSE = re.compile(r"HTTP Response Received:.*")
FIELD = re.compile(r"(rpc\.method|http\.status_code|http\.duration)=(\S+)")
OPERATION = re.compile(r"tf_req_id=([0-9a-f-]{36})")
METHOD = re.compile(r"rpc\.method=(\w+)")
ENTRY = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")  # one resource operation: its requests run one at a time


def entries(path: Path) -> Iterator[str]:
    """The provider log's entries (an entry may span lines: a logged body keeps its newlines)."""
    entry: list[str] = []
    with path.open(errors="replace") as log:
        for line in log:
            if ENTRY.match(line) and entry:
                yield "".join(entry)
                entry = []
            entry.append(line)
    if entry:
        yield "".join(entry)


def provider_log(path: Path, keep: Path | None = None) -> dict[str, Any]:
    """Retried requests (with what their first attempt got), 5xx answers and the slowest answer in one log.

    With ``keep``, every entry of an operation that had a request retried is written there.
    """
    retried: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    slowest, answers = (0, ""), 0
    last_outcome: dict[str, str] = {}  # operation -> what its latest request got
    history: dict[str, list[str]] = {}  # operation -> its entries (kept for the retried ones)
    evidence: list[str] = []
    kept: set[str] = set()
    if not path.exists():
        return {"answers": 0, "retried": {}, "5xx": {}, "slowest_ms": 0, "slowest": "", "why_retried": []}
    for entry in entries(path):
        found = OPERATION.search(entry)
        operation = found.group(1) if found else None
        if operation is not None and ("HTTP" in entry or "error" in entry):
            history.setdefault(operation, []).append(entry[:4000])
        method = METHOD.search(entry)
        name = method.group(1) if method else "?"
        if "HTTP Request Sent" in entry and "attempt=2" in entry:
            retried[name] += 1
            evidence.append(f"{name} retried after: {last_outcome.get(operation or '?', 'nothing logged')}"[:300])
            kept.add(operation or "?")
        elif "HTTP Response Received" in entry:
            answers += 1
            fields = dict(FIELD.findall(entry))
            if fields.get("http.status_code", "200").startswith("5"):
                errors[f"{name} {fields['http.status_code']}"] += 1
            duration = int(fields.get("http.duration", "0") or 0)
            if duration > slowest[0]:
                slowest = (duration, name)
            last_outcome[operation or "?"] = f"HTTP {fields.get('http.status_code')} in {duration} ms"
        elif "retryable error" in entry and "unretryable" not in entry:
            last_outcome[operation or "?"] = " ".join(entry.split("retryable error", 1)[1].split())[:200]
    if keep is not None and kept:
        keep.write_text("\n".join(e for op in sorted(kept) for e in history.get(op, [])))
    return {"answers": answers, "retried": dict(retried), "5xx": dict(errors), "slowest_ms": slowest[0],
            "slowest": slowest[1], "why_retried": evidence[:5]}  # fmt: skip


def one_run(index: int, logs: Path, python: str) -> dict[str, Any]:
    """One check; its outcome, timings and what the provider's log shows."""
    folder = logs / f"run-{index:02d}"
    env = {**os.environ, "IOTPM_TF_LOG_DIR": str(folder), "IOTPM_PYTHON": python}
    started = time.monotonic()
    proc = subprocess.run([str(CHECK)], env=env, capture_output=True, text=True, check=False)
    wall = time.monotonic() - started
    if folder.exists():
        (folder / "check.out").write_text(proc.stdout + proc.stderr)
    timings: dict[str, Any] = {}
    for line in proc.stdout.splitlines():
        if line.startswith("{"):
            timings = json.loads(line)
    result = {"run": index, "passed": proc.returncode == 0, "wall_s": round(wall, 1), **timings}
    result.update(provider_log(folder / "provider.log", logs / f"run-{index:02d}-retried.log"))
    # retries whose first attempt had reached the emulator (and had its effect): it answered them again
    result["answered_again"] = sum(
        log.read_text(errors="replace").count("answered from its first attempt")
        for log in folder.glob("emulator-*.log")
    )
    if proc.returncode != 0:
        result["error"] = next((ln for ln in (proc.stdout + proc.stderr).splitlines() if "Error" in ln), "")[:300]
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--keep", type=Path, default=None, help="where failed runs' logs stay (default: a temp dir)")
    parser.add_argument("--python", default=str(ROOT / ".venv" / "bin" / "python"), help="the venv's python")
    args = parser.parse_args(argv)
    logs = args.keep or Path(tempfile.mkdtemp(prefix="iotpm-soak-"))
    logs.mkdir(parents=True, exist_ok=True)
    results = []
    for i in range(1, args.runs + 1):
        r = one_run(i, logs, args.python)
        results.append(r)
        if r["passed"]:
            shutil.rmtree(logs / f"run-{i:02d}", ignore_errors=True)
        print(
            f"run {i:2d}/{args.runs}: {'pass' if r['passed'] else 'FAIL'}  total {r.get('total_s', r['wall_s'])} s"
            f"  apply {r.get('apply_s', '-')} s  retried {sum(r['retried'].values())} {r['retried'] or ''}"
            f"  5xx {sum(r['5xx'].values())} {r['5xx'] or ''}  slowest {r['slowest_ms']} ms {r['slowest']}"
            f"  answered again by the emulator {r['answered_again']}"
            + (f"  error: {r['error']}" if not r["passed"] else ""),
            flush=True,
        )
        for why in r["why_retried"]:
            print(f"    {why}", flush=True)
    passed = [r for r in results if r["passed"]]
    print(f"\npassed {len(passed)} of {len(results)}; logs of failed runs in {logs}")
    summary: dict[str, Any] = {"runs": len(results), "passed": len(passed)}
    for key in ("apply_s", "plan_s", "destroy_s", "total_s"):
        values = [r[key] for r in passed if key in r]
        if values:
            summary[f"median_{key}"] = round(statistics.median(values), 1)
            summary[f"first_{key}"] = values[0]
            print(f"{key:10s} median {summary[f'median_{key}']:6.1f} s (first run, the baseline: {values[0]} s)")
    summary["retried_requests"] = sum(sum(r["retried"].values()) for r in results)
    summary["5xx_answers"] = sum(sum(r["5xx"].values()) for r in results)
    summary["answered_again"] = sum(r["answered_again"] for r in results)
    summary["slowest_ms"] = max((r["slowest_ms"] for r in results), default=0)
    summary["why_retried"] = [w for r in results for w in r["why_retried"]][:20]
    print(json.dumps(summary))
    sys.exit(0 if len(passed) == len(results) else 1)


if __name__ == "__main__":
    main()
