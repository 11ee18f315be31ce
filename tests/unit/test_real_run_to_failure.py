"""The real run-to-failure harness's own logic (benchmarks/real_run_to_failure.py), on
made-up inputs: features of a snapshot, the files' parsing, the onset of degradation,
and the operator's judgement of a machine's alarm events. The data sets themselves are
downloaded by the benchmark, never by the tests."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
HOUR = 3_600_000
TEN_MIN = 600_000


@pytest.fixture(scope="module")
def rr() -> ModuleType:
    spec = importlib.util.spec_from_file_location("real_run_to_failure", ROOT / "benchmarks" / "real_run_to_failure.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


def _ts(n: int, step: int = TEN_MIN) -> np.ndarray:
    return np.arange(n, dtype=np.int64) * step


def test_features_of_a_sine_and_of_an_impulse(rr: ModuleType) -> None:
    t = np.arange(20_480) / 20_480.0
    sine = 2.0 * np.sin(2 * np.pi * 50 * t)
    impulse = np.zeros_like(t)
    impulse[100] = 1.0
    f = rr.snapshot_features(np.stack([sine, impulse], axis=1))
    rms, peak, crest, kurt = f[:4]
    assert rms == pytest.approx(2.0 / np.sqrt(2.0), rel=1e-6)
    assert peak == pytest.approx(2.0, rel=1e-6)
    assert crest == pytest.approx(np.sqrt(2.0), rel=1e-6)
    assert kurt == pytest.approx(1.5, rel=1e-3)  # a sine's kurtosis (not in excess)
    assert f[6] > 100 and f[7] > 1000  # one impulse: huge crest factor and kurtosis


def test_snapshot_rows_with_either_separator(rr: ModuleType) -> None:
    comma = b"9,39,39,65664,0.552,-0.146\n9,39,39,65703,0.501,-0.48\n"
    semi = comma.replace(b",", b";")
    for text in (comma, semi):
        sod, signal = rr.parse_snapshot(text)
        assert sod == pytest.approx(9 * 3600 + 39 * 60 + 39 + 0.065664)
        assert signal.tolist() == [[0.552, -0.146], [0.501, -0.48]]


def test_ims_table_gives_each_bearing_and_the_rig(rr: ModuleType, tmp_path: Path) -> None:
    features = ("mean", "rms", "max", "crest", "kurtosis")
    header = [""] + [f"B{b}_{f}" for b in (1, 2, 3, 4) for f in features]
    rows = [",".join(header)]
    for k, when in enumerate(("2004-02-12 10:32:39", "2004-02-12 10:42:39", "2004-02-14 10:42:39")):
        rows.append(",".join([when] + [str(b + k / 10) for b in (1, 2, 3, 4) for _ in features]))
    path = tmp_path / "t2.csv"
    path.write_text("\n".join(rows) + "\n")
    machines = {m.name: m for m in rr.ims_machines({2: path})}
    assert sorted(machines) == ["ims2-b1", "ims2-b2", "ims2-b3", "ims2-b4", "ims2-rig"]
    b1, rig = machines["ims2-b1"], machines["ims2-rig"]
    assert b1.channels == ("rms", "max", "crest", "kurtosis")  # the mean is not a feature here
    assert b1.failed and not machines["ims2-b2"].failed  # set 2: bearing 1 failed
    assert [b1.channels[k] for k in b1.rms] == ["rms"]
    assert len(rig.channels) == 16 and rig.failed
    assert [rig.channels[k] for k in rig.rms] == ["b1_rms"]  # the onset is read on the failed bearing
    assert np.diff(b1.ts).tolist() == [TEN_MIN, 48 * HOUR]


def test_onset_is_the_lasting_doubling_after_the_healthy_life(rr: ModuleType) -> None:
    ts = _ts(200)
    rms = np.ones((200, 1))
    rms[120] = 5.0  # one bad snapshot is no onset
    rms[150:] = 2.5
    onset = rr.onset_ms(ts, rms, healthy_end_ms=int(ts[100]))
    # the running median of 6 snapshots is past 2x at the 4th doubled one
    assert onset == ts[153]
    assert rr.onset_ms(ts, np.ones((200, 1)), healthy_end_ms=int(ts[100])) is None
    # a doubling inside the healthy life is not an onset after it
    early = np.ones((200, 1))
    early[50:60] = 3.0
    assert rr.onset_ms(ts, early, healthy_end_ms=int(ts[100])) is None


def test_judgement_of_a_failure_hidden_behind_an_open_alarm(rr: ModuleType) -> None:
    event = rr.Event
    ts = _ts(600)  # 100 h
    healthy_end = int(ts[300])
    onset = int(ts[540])
    events = [
        event(int(ts[60]), "raise", "warning", "multivariate *"),  # a false alarm in the healthy life
        event(int(ts[120]), "clear", "warning"),
        event(int(ts[250]), "raise", "warning", "drift x_rms"),  # never clears
    ]
    j = rr.judge("m", ts, events, healthy_end, onset)
    # open 60..120 and 250..300 of the 300 healthy readings
    assert j.healthy_in_alarm == pytest.approx((60 + 50) / 300)
    assert j.healthy_raises == 2
    assert j.healthy_alarm_h_by_cause == {"multivariate *": 10.0, "drift x_rms": pytest.approx(50 / 6, abs=0.01)}
    assert j.longest_healthy_alarm_h == 10.0
    assert j.open_at_onset and j.open_at_failure
    assert not j.failure_paged and j.failure_severity == ""  # the failure never got an event
    assert j.first_warning_h is None
    assert j.onset_before_failure_h == pytest.approx((599 - 540) / 6)

    escalated = [*events, event(int(ts[560]), "escalate", "critical", "spike x_rms")]
    k = rr.judge("m", ts, escalated, healthy_end, onset)
    assert k.failure_paged and k.failure_severity == "critical" and k.escalations == 1
    assert k.failure_events[0].startswith("escalate critical spike x_rms")


def test_first_warning_drift_refires_and_held_by(rr: ModuleType) -> None:
    event = rr.Event
    ts = _ts(600)
    events = [
        event(int(ts[320]), "raise", "warning", "drift x_rms"),
        event(int(ts[330]), "clear", "warning"),
        event(int(ts[420]), "raise", "warning", "drift x_rms"),
        event(int(ts[430]), "clear", "warning"),
    ]
    held = [""] * 600
    held[0:30] = ["multivariate *"] * 30  # counted in the healthy life only
    held[320:330] = ["drift x_rms"] * 10
    j = rr.judge("m", ts, events, int(ts[300]), int(ts[560]), held)
    assert j.first_warning_h == pytest.approx((599 - 320) / 6)  # the first raise after the healthy life
    assert j.drift_raises == 2 and j.drift_gaps_h == [pytest.approx(100 / 6, abs=0.01)]
    assert j.healthy_alarm_h_held_by == {"multivariate *": 5.0}
    assert j.healthy_in_alarm == 0.0  # no raise/clear interval in the healthy life


def test_restart_after_a_long_stop(rr: ModuleType) -> None:
    event = rr.Event
    ts = np.concatenate([_ts(100), _ts(400) + 99 * TEN_MIN + 72 * HOUR])  # stopped three days
    back = int(ts[100])
    events = [event(back + TEN_MIN, "raise", "warning", "multivariate *")]
    j = rr.judge("m", ts, events, int(ts[-1]) + 1, None)
    assert j.failed is False and j.onset_before_failure_h is None
    [r] = j.restarts
    assert r.stopped_h == pytest.approx(72.0, abs=0.2) and r.raised and r.open_after_24h
    cleared = [*events, event(back + 2 * HOUR, "clear", "warning")]
    [r2] = rr.judge("m", ts, cleared, int(ts[-1]) + 1, None).restarts
    assert r2.raised and not r2.open_after_24h


def test_sigma3_peer_raises_on_a_step_and_clears_with_hysteresis(rr: ModuleType) -> None:
    rng = np.random.default_rng(7)
    values = rng.normal(0.0, 1.0, size=(300, 1))
    values[200:230] += 10.0
    m = rr.Machine("m", "test", ("x",), _ts(300), values, False, (0,))
    events = rr.run_sigma3(m)
    kinds = [(e.kind, int(e.ts_ms // TEN_MIN)) for e in events if e.ts_ms >= 200 * TEN_MIN]
    assert kinds[0] == ("raise", 200)
    assert kinds[1][0] == "clear" and 231 <= kinds[1][1] <= 233  # 2 readings and 10 minutes below


def test_features_are_copied_into_the_cache_from_a_local_repository(rr: ModuleType, tmp_path: Path) -> None:
    import subprocess

    repo = tmp_path / "repo"
    for path in rr.IMS_FILES.values():
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / path).write_text(f",B1_rms\n2004-02-12 10:32:39,{len(path)}\n")
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "features"], check=True)
    cache = tmp_path / "cache"
    cache.mkdir()
    paths = rr.ims_features(str(repo), cache)
    assert sorted(paths) == [1, 2]
    for n, path in paths.items():
        assert path.parent == cache
        assert path.read_text().endswith(f",{len(rr.IMS_FILES[n])}\n")
    assert not (cache / "ims-features.git").exists()  # a local repository is read in place


def test_iotpm_run_names_what_holds_each_reading_in_alarm(rr: ModuleType) -> None:
    rng = np.random.default_rng(3)
    n = 600
    values = 1.0 + 0.01 * rng.standard_normal((n, 2))
    values[400:, 0] += 0.5  # a lasting step of one metric
    m = rr.Machine("m", "test", ("a_rms", "b_rms"), _ts(n), values, False, (0,))
    events, held = rr.run_iotpm(m)
    assert len(held) == n
    raised = [e for e in events if e.kind == "raise"]
    assert raised, "a 50-sigma step of a unit-less metric raises"
    for e in raised:
        assert held[int(e.ts_ms // TEN_MIN)] != ""  # the raising reading is in alarm
    assert set(held[:50]) == {""}  # nothing is open during the warm-up


def test_a_remote_repository_is_cloned_once_into_the_cache(rr: ModuleType, tmp_path: Path) -> None:
    import subprocess

    repo = tmp_path / "remote"
    for path in rr.IMS_FILES.values():
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / path).write_text(",B1_rms\n2004-02-12 10:32:39,0.1\n")
    (repo / "big.ipynb").write_text("x" * 100_000)
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run([*git, "config", "uploadpack.allowFilter", "true"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "features"], check=True)
    cache = tmp_path / "cache"
    cache.mkdir()
    paths = rr.ims_features(repo.as_uri(), cache)
    assert (cache / "ims-features.git").is_dir()
    assert all(p.read_text().startswith(",B1_rms") for p in paths.values())
    # the notebook's contents were never fetched: only the two feature tables
    missing = subprocess.run(
        ["git", "--git-dir", str(cache / "ims-features.git"), "cat-file", "-e", "HEAD:big.ipynb"],
        check=False,
        capture_output=True,
        env={**os.environ, "GIT_NO_LAZY_FETCH": "1"},
    )
    assert missing.returncode != 0
    paths[1].unlink()
    rr.ims_features(repo.as_uri(), cache)  # the clone is reused, the table copied again
    assert paths[1].exists()


def test_a_long_stop_counts_neither_way_in_the_healthy_share(rr: ModuleType) -> None:
    event = rr.Event
    ts = np.concatenate([_ts(60), _ts(60) + 59 * TEN_MIN + 96 * HOUR])  # 10 h, stopped 4 days, 10 h
    steps = rr.running_steps(ts, int(ts[-1]) + TEN_MIN)
    assert steps[59] == 0 and steps.sum() == 119 * TEN_MIN  # the reading before the stop stands for nothing
    # an alarm raised at the last reading before the stop, cleared 1 h after the restart
    events = [event(int(ts[59]), "raise", "warning", "multivariate *"), event(int(ts[66]), "clear", "warning")]
    j = rr.judge("m", ts, events, int(ts[-1]) + 1, None)
    # six running readings of 118 (the run ends at its last reading), not four days
    assert j.healthy_in_alarm == pytest.approx(6 / 118)
    assert j.longest_healthy_alarm_h == pytest.approx(97.0, abs=0.2)  # the alarm's age includes the stop
