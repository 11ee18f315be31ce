"""``iotpm detect`` end to end through the console entry point, as a script calls it."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from iotpm.api.app import iso_texts
from iotpm.cli.app import app
from iotpm.cli.detect import CsvSource, Detection, Reservoir, iso_ms, timestamps
from iotpm.detection import DetectorConfig
from iotpm.models import epoch_ms, parse_timestamp

runner = CliRunner()


def write_csv(path: Path, rows: int = 400, fault_at: int = 300, shuffle: bool = False) -> Path:
    """Two pumps; pump-1 overheats (+40 °C) from row ``fault_at``; pressure stays normal."""
    rng = np.random.default_rng(3)
    lines = []
    for dev in ("pump-1", "pump-2"):
        for i in range(rows):
            temp = 55 + rng.normal(0, 0.5) + (40 if dev == "pump-1" and i >= fault_at else 0)
            lines.append(f"2026-01-01T{i // 3600:02d}:{i // 60 % 60:02d}:{i % 60:02d}Z,{dev},{temp:.3f},"
                         f"{90 + rng.normal(0, 1):.3f}")  # fmt: skip
    if shuffle:
        rng.shuffle(lines)
    path.write_text("timestamp,device,temperature_c,pressure_psi\n" + "\n".join(lines) + "\n")
    return path


def detect(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
    res = runner.invoke(app, ["detect", *args], input=stdin)
    return res.exit_code, res.stdout, res.stderr


def test_detect_summarises_writes_alarms_in_the_apis_shape_and_plots(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "h.csv")
    out, png = tmp_path / "a.json", tmp_path / "p.png"
    code, stdout, stderr = detect(str(src), "--device-column", "device", "--out", str(out), "--plot", str(png))
    assert code == 0, stderr
    assert "pump-1" in stdout and "pump-2" in stdout
    assert "wrote 1 alarm raises" in stderr  # messages on stderr, results on stdout
    records = json.loads(out.read_text())
    assert [r["device_id"] for r in records] == ["pump-1"]
    assert records[0]["time"] == "2026-01-01T00:05:00Z"  # row 300, ISO 8601 UTC as the API gives it
    assert records[0]["reasons"][0]["metric"] == "temperature_c"
    assert png.stat().st_size > 10_000 and png.read_bytes()[:4] == b"\x89PNG"


def test_detect_writes_csv(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "h.csv")
    out = tmp_path / "a.csv"
    code, _, stderr = detect(str(src), "--device-column", "device", "--out", str(out))
    assert code == 0, stderr
    header, row = out.read_text().splitlines()
    assert header == "device_id,time,severity,score,detector,metric,observed,expected"
    assert row.startswith("pump-1,2026-01-01T00:05:00Z,critical,")


def test_json_summary_for_scripts(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "h.csv")
    code, stdout, _ = detect(str(src), "--device-column", "device", "--format", "json")
    assert code == 0
    doc = json.loads(stdout)
    assert doc["rows"] == 800 and doc["alarms"] == 1
    pump1 = doc["devices"][0]
    assert pump1["device_id"] == "pump-1" and pump1["alarm_open"] is True
    assert pump1["first"] == "2026-01-01T00:00:00Z" and pump1["last"] == "2026-01-01T00:06:39Z"
    assert pump1["top_reason"] == "spike on temperature_c"


def test_stdin_in_and_alarms_on_stdout(tmp_path: Path) -> None:
    text = write_csv(tmp_path / "h.csv").read_text()
    code, stdout, stderr = detect("-", "--device-column", "device", "--out", "-", stdin=text)
    assert code == 0, stderr
    assert [r["device_id"] for r in json.loads(stdout)] == ["pump-1"]  # stdout is only the alarms
    assert "pump-2" in stderr  # the summary table moved to stderr


def test_two_outputs_on_stdout_is_a_usage_error(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "h.csv")
    code, stdout, stderr = detect(str(src), "--out", "-", "--format", "json")
    assert code == 2 and stdout == ""
    assert "--out and --format json both write to stdout" in stderr


@pytest.mark.parametrize(
    ("content", "args", "message"),
    [
        ("", [], "empty"),
        ("timestamp,temperature_c\n", [], "a header but no rows"),
        ("when,temperature_c\n1,2\n", [], "no timestamp column"),
        ("timestamp,temperature_c\nnot-a-time,2\n", [], "line 2: cannot parse timestamp"),
        ("timestamp,temperature_c\n2026-01-01T00:00:00Z,2\n2026-01-01T00:00:01Z\n", [], "line 3: 1 fields"),
        ("timestamp,temperature_c\n2026-01-01T00:00:00Z,2\n", ["--metrics", "pressure_psi"], "pressure_psi"),
        ("timestamp,temperature_c\n2026-01-01T00:00:00Z,2\n", ["--device-column", "dev"], "device column"),
    ],
)
def test_bad_input_is_one_line_on_stderr_and_exit_2(
    tmp_path: Path, content: str, args: list[str], message: str
) -> None:
    src = tmp_path / "bad.csv"
    src.write_text(content)
    code, stdout, stderr = detect(str(src), *args)
    assert code == 2
    assert message in stderr and stderr.startswith("error:") and stdout == ""


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    code, _, stderr = detect(str(tmp_path / "nope.csv"))
    assert code == 2 and "no such file" in stderr


@pytest.mark.parametrize("value", ["-5", "0", "9"])
def test_warmup_out_of_range_is_a_usage_error(tmp_path: Path, value: str) -> None:
    code, _, stderr = detect(str(write_csv(tmp_path / "h.csv")), "--warmup", value)
    assert code == 2 and "--warmup" in stderr


def test_warmup_not_shorter_than_the_input_is_an_error(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "h.csv", rows=100)
    code, _, stderr = detect(str(src), "--device-column", "device", "--warmup", "100")
    assert code == 2
    assert "--warmup 100 leaves nothing to analyse" in stderr and "longest device: 100 rows" in stderr
    code, _, _ = detect(str(src), "--device-column", "device", "--warmup", "99")
    assert code == 0


def test_unwritable_out_fails_before_the_work(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "h.csv")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    # a read-only folder refuses everyone but root; sysfs refuses new files to root too
    folder = Path("/sys") if os.geteuid() == 0 else locked
    for option in ("--out", "--plot"):
        code, stdout, stderr = detect(str(src), option, str(folder / "iotpm-x"))
        assert code == 2 and "cannot write" in stderr
        assert "Traceback" not in stderr and len(stderr.splitlines()) == 1 and stdout == ""


def test_out_in_a_missing_folder_fails_in_one_line(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "h.csv")
    for option in ("--out", "--plot"):
        code, _, stderr = detect(str(src), option, str(tmp_path / "no" / "such" / "x.json"))
        assert code == 2 and len(stderr.splitlines()) == 1 and "Traceback" not in stderr


def test_limits_from_options_and_from_a_file(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "h.csv", fault_at=10_000)  # no fault: 55 °C, 90 psi
    base = [str(src), "--device-column", "device", "--format", "json"]

    def alarms(*extra: str) -> dict[str, int]:
        code, stdout, stderr = detect(*base, *extra)
        assert code == 0, stderr
        return {d["device_id"]: d["alarms"] for d in json.loads(stdout)["devices"]}

    assert alarms() == {"pump-1": 0, "pump-2": 0}
    assert alarms("--limit", "temperature_c=10:50") == {"pump-1": 1, "pump-2": 1}
    limits = tmp_path / "limits.json"
    limits.write_text(json.dumps({"device": {"pump-2": {"pressure": {"low": 95}}}}))
    assert alarms("--limits", str(limits)) == {"pump-1": 0, "pump-2": 1}
    config = tmp_path / "detector.json"
    config.write_text(json.dumps({"thresholds": {"line": {}, "defaults": {"temperature": {"high": 50}}}}))
    assert alarms("--config", str(config)) == {"pump-1": 1, "pump-2": 1}


def test_detector_settings_from_options(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "h.csv")
    code, stdout, _ = detect(str(src), "--device-column", "device", "--format", "json", "--set", "spike_z=1000",
                             "--set", "roc_z=1000", "--limit", "temperature_c=:")  # fmt: skip
    assert code == 0
    assert json.loads(stdout)["alarms"] == 1  # the multivariate detector still sees it
    longer = ("--set", "alarm.min_duration=500")
    code, stdout, _ = detect(str(src), "--device-column", "device", "--format", "json", *longer)
    assert code == 0 and json.loads(stdout)["alarms"] == 0  # 100 faulty readings never reach 500 in a row


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "spike_z=-1"], "spike_z: Input should be greater than 0"),
        (["--set", "nope=1"], "no such detector setting"),
        (["--set", "spike_z"], "expected KEY=VALUE"),
        (["--limit", "temperature_c=90:10"], "must be below high"),
        (["--limit", "temperature_c"], "expected METRIC=LOW:HIGH"),
        (["--limit", "temperature_c=a:b"], "must be numbers"),
        (["--config", "missing.json"], "--config missing.json"),
    ],
)
def test_bad_settings_are_usage_errors(tmp_path: Path, args: list[str], message: str) -> None:
    code, _, stderr = detect(str(write_csv(tmp_path / "h.csv")), *args)
    assert code == 2 and message in stderr


def test_out_of_order_rows_are_skipped_and_counted(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "h.csv", shuffle=True)
    code, stdout, stderr = detect(str(src), "--device-column", "device", "--format", "json", "--chunk-rows", "100")
    assert code == 0
    devices = json.loads(stdout)["devices"]
    assert all(d["skipped_out_of_order"] > 0 and d["analysed"] + d["skipped_out_of_order"] == 400 for d in devices)
    assert "rows older than one already analysed were skipped" in stderr


def test_progress_bar_on_stderr(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "h.csv")
    code, stdout, stderr = detect(str(src), "--progress", "--format", "json", "--chunk-rows", "200")
    assert code == 0 and "800 rows" in stderr
    json.loads(stdout)  # the bar never lands on stdout


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(chunk=st.integers(min_value=1, max_value=900), warm=st.sampled_from([None, 50]))
def test_chunked_reading_gives_the_same_alarms(tmp_path: Path, chunk: int, warm: int | None) -> None:
    """Reading the file in chunks of any size changes nothing the detector reports."""
    src = tmp_path / "h.csv"
    if not src.exists():
        write_csv(src)

    def alarms(rows: int) -> list[tuple[str, str, float | None]]:
        s = CsvSource(str(src), device_col="device", chunk_rows=rows)
        det = Detection(s.metrics, DetectorConfig(), warm)
        for c in s.chunks():
            det.feed(c)
        s.close()
        return [(r.device, str(r.alarms), r.health) for r in det.finish()]

    assert alarms(chunk) == alarms(10_000)


def test_plot_marks_an_alarm_only_on_the_metric_that_caused_it(tmp_path: Path) -> None:
    s = CsvSource(str(write_csv(tmp_path / "h.csv")), device_col="device", chunk_rows=64)
    det = Detection(s.metrics, DetectorConfig(), plot=True)
    for c in s.chunks():
        det.feed(c)
    pump1, pump2 = det.finish()
    assert pump1.plot is not None and pump2.plot is not None
    temperature, pressure = pump1.plot.marks
    assert temperature.seen == 100 and pressure.seen == 0  # the overheating is not drawn on pressure
    assert [j for _, j, _ in pump1.plot.raises] == [0]
    assert all(m.seen == 0 for m in pump2.plot.marks)


@given(sizes=st.lists(st.integers(0, 3000), min_size=1, max_size=20), cap=st.integers(2, 500))
def test_reservoir_stays_bounded_and_evenly_spaced(sizes: list[int], cap: int) -> None:
    r = Reservoir(1, cap)
    start = 0
    for n in sizes:
        r.add(np.arange(start, start + n, dtype=np.int64), np.zeros((n, 1)))
        start += n
    assert len(r.ts) <= cap
    assert r.ts.tolist() == list(range(0, start, r.stride))[: len(r.ts)]
    assert len(r.ts) == len(range(0, start, r.stride))


@given(st.lists(st.integers(946_684_800_000, 4_102_444_800_000), min_size=1, max_size=5))
def test_times_are_written_as_the_api_writes_them(ts: list[int]) -> None:
    for t in ts:
        assert [iso_ms(t)] == iso_texts([t])


_TIMES = st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2099, 12, 31))


@st.composite
def timestamp_texts(draw: st.DrawFn) -> str:
    """What a historian's export puts in a timestamp column."""
    t = draw(_TIMES)
    form = draw(st.sampled_from(["iso_z", "iso", "space", "ms", "date", "epoch_s", "epoch_ms", "offset", "junk"]))
    if form == "epoch_s":
        return str(int(t.replace(tzinfo=UTC).timestamp()))
    if form == "epoch_ms":
        return str(int(t.replace(tzinfo=UTC).timestamp() * 1000))
    if form == "junk":
        return draw(st.sampled_from(["NaT", "nan", "", "2026-13-01", "yesterday", "1e999"]))
    text = {"iso_z": t.strftime("%Y-%m-%dT%H:%M:%SZ"), "iso": t.strftime("%Y-%m-%dT%H:%M:%S"),
            "space": t.strftime("%Y-%m-%d %H:%M"), "ms": t.isoformat(timespec="milliseconds") + "Z",
            "date": t.strftime("%Y-%m-%d"), "offset": t.strftime("%Y-%m-%dT%H:%M:%S+02:00")}  # fmt: skip
    return text[form]


@given(st.lists(timestamp_texts(), min_size=1, max_size=20))
def test_column_timestamps_read_as_each_value_would_be(texts: list[str]) -> None:
    """The column-at-once parse gives what parse_timestamp gives per value, or hands the
    column to it (None); every column of one plain form takes the fast path."""
    fast = timestamps(texts)
    slow = [parse_timestamp(float(t) if _is_number(t) else t) for t in texts]
    if fast is not None:
        assert all(p is not None for p in slow)
        assert fast.tolist() == [epoch_ms(p) for p in slow if p is not None]


@pytest.mark.parametrize("text", ["2026-01-01T00:00:00Z", "2026-01-01 00:00", "2026-01-01T00:00:00.250", "1767225600"])
def test_plain_timestamp_columns_take_the_fast_path(text: str) -> None:
    assert timestamps([text] * 3) is not None


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def test_detect_runs_on_a_nab_file(tmp_path: Path, anomaly_bench: Path) -> None:
    src = anomaly_bench / "nab" / "data" / "realAWSCloudwatch" / "ec2_cpu_utilization_825cc2.csv"
    out = tmp_path / "a.json"
    code, _, stderr = detect(str(src), "--warmup", "600", "--out", str(out))
    assert code == 0, stderr
    assert isinstance(json.loads(out.read_text()), list)


def test_memory_does_not_grow_with_the_file(tmp_path: Path) -> None:
    """What the command holds is bounded by the chunk and the plot's reservoirs, not the
    file: ten times the rows, about the same traced peak (the figure is the benchmark's,
    benchmarks/cli_detect.py; this checks the shape on a small slice)."""
    import tracemalloc

    def peak(rows: int) -> int:
        src = write_csv(tmp_path / f"h{rows}.csv", rows=rows, fault_at=rows // 2)
        source = CsvSource(str(src), device_col="device", chunk_rows=1_000)
        det = Detection(source.metrics, DetectorConfig(), plot=True, plot_points=300)
        tracemalloc.start()
        for c in source.chunks():
            det.feed(c)
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        source.close()
        assert all(len(r.plot.series.ts) <= 300 for r in det.finish() if r.plot is not None)
        return top

    small, large = peak(1_500), peak(15_000)
    assert large < 1.5 * small, (small, large)


def test_limits_per_line_and_device_type_from_their_columns(tmp_path: Path) -> None:
    """The scopes of a limits file apply when the CSV says each device's line and type."""
    rng = np.random.default_rng(1)
    rows = [
        f"2026-01-01T00:{i // 60:02d}:{i % 60:02d}Z,{dev},{line},{kind},{55 + rng.normal(0, 0.5):.3f}"
        for dev, line, kind in (("pump-1", "line-1", "pump"), ("fan-1", "line-2", "fan"), ("fan-2", "line-1", "fan"))
        for i in range(300)
    ]
    src = tmp_path / "h.csv"
    src.write_text("timestamp,device,line,type,temperature_c\n" + "\n".join(rows) + "\n")
    limits = tmp_path / "limits.json"
    limits.write_text(json.dumps({"device_type": {"fan": {"temperature": {"high": 50}}},
                                  "line": {"line-1": {"temperature": {"high": 90}}}}))  # fmt: skip
    code, stdout, stderr = detect(str(src), "--device-column", "device", "--line-column", "line",
                                  "--type-column", "type", "--limits", str(limits), "--format", "json")  # fmt: skip
    assert code == 0, stderr
    devices = {d["device_id"]: d for d in json.loads(stdout)["devices"]}
    assert devices["fan-1"]["alarms"] == 1  # its type's limit (55 > 50)
    assert devices["fan-2"]["alarms"] == 0  # its line's limit is more specific than its type's
    assert devices["pump-1"]["alarms"] == 0
    assert (devices["fan-1"]["line"], devices["fan-1"]["device_type"]) == ("line-2", "fan")
    assert "type" not in json.loads(stdout)["metrics"]
