"""The composition root: the region comes from the runtime, settings from a function's environment."""

from __future__ import annotations

from typing import Any

import pytest

from iotpm.composition import Settings, TableSettings, build_queries

TABLES = {
    "IOTPM_READINGS_TABLE": "r",
    "IOTPM_DEVICES_TABLE": "d",
    "IOTPM_ANOMALIES_TABLE": "a",
    "IOTPM_ROLLUPS_TABLE": "u",
}
PROCESSOR = {
    **TABLES,
    "IOTPM_ARCHIVE_BUCKET": "b",
    "IOTPM_ALERTS_TOPIC_ARN": "arn:aws:sns:eu-west-1:000000000000:t",
    "IOTPM_TIMESTREAM_ENABLED": "true",
    "IOTPM_TIMESTREAM_DATABASE": "db",
    "IOTPM_TIMESTREAM_TABLE": "t",
}


@pytest.fixture
def lambda_runtime(monkeypatch: pytest.MonkeyPatch) -> None:
    """What Lambda sets in eu-west-1; a stale AWS_DEFAULT_REGION from a shell must not win."""
    for key in ("IOTPM_REGION", "AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    for key, value in PROCESSOR.items():
        monkeypatch.setenv(key, value)


def regions(*clients: Any) -> set[str]:
    return {c.meta.region_name for c in clients}


@pytest.mark.usefixtures("lambda_runtime")
def test_the_processor_handlers_clients_follow_aws_region() -> None:
    from iotpm.handlers import processor

    proc = processor._build()  # what the Lambda's handler builds on its first invoke
    used = [proc.readings.client, proc.states.client, proc.archive.client, proc.alerts.client]
    assert proc.timeseries is not None
    assert regions(*used, proc.timeseries.client) == {"eu-west-1"}


@pytest.mark.usefixtures("lambda_runtime")
def test_the_api_handlers_client_follows_aws_region() -> None:
    from iotpm.handlers import api

    assert regions(api._build().client) == {"eu-west-1"}  # type: ignore[attr-defined]


@pytest.mark.usefixtures("lambda_runtime")
def test_an_explicit_iotpm_region_wins_over_the_runtimes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IOTPM_REGION", "ap-southeast-2")
    assert regions(build_queries().client) == {"ap-southeast-2"}  # type: ignore[attr-defined]


def test_without_any_region_setting_botocore_chain_decides(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("IOTPM_REGION", "AWS_REGION"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "sa-east-1")
    settings = TableSettings.from_environment(TABLES)
    assert settings.region is None  # no region written in code
    assert regions(build_queries(settings).client) == {"sa-east-1"}  # type: ignore[attr-defined]


@pytest.mark.parametrize("region", ["eu-west-1", "eu-central-1", "us-west-2"])
def test_settings_from_a_function_environment_take_its_region(region: str) -> None:
    s = Settings.from_environment({**PROCESSOR, "AWS_REGION": region, "IOTPM_READINGS_TTL_DAYS": "30"})
    assert (s.region, s.readings_ttl_days, s.timestream_enabled, s.archive_bucket) == (region, 30, True, "b")


def test_a_misspelt_iotpm_variable_is_an_error_not_ignored() -> None:
    with pytest.raises(ValueError, match="IOTPM_READINGS_TTL_DAY"):
        Settings.from_environment({**PROCESSOR, "IOTPM_READINGS_TTL_DAY": "30"})


def test_a_missing_required_variable_is_an_error() -> None:
    env = {k: v for k, v in PROCESSOR.items() if k != "IOTPM_ARCHIVE_BUCKET"}
    with pytest.raises(ValueError, match="archive_bucket"):
        Settings.from_environment(env)


def test_the_channel_caps_come_from_the_environment_terraform_sets() -> None:
    env = {**PROCESSOR, "IOTPM_MAX_CHANNELS": "48", "IOTPM_MAX_CHANNELS_BY_TYPE": "pump=8, vibration probe=2"}
    s = Settings.from_environment(env)
    assert (s.max_channels, s.channel_caps()) == (48, {"pump": 8, "vibration probe": 2})
    assert (
        Settings.from_environment(PROCESSOR).channel_caps() == {}
        and Settings.from_environment(PROCESSOR).max_channels == 64
    )


@pytest.mark.parametrize("caps", ["pump", "pump=", "=8", "pump=0", "pump=65", "pump=x"])
def test_a_malformed_channel_cap_is_an_error_at_start(caps: str) -> None:
    with pytest.raises(ValueError, match="max_channels_by_type"):
        Settings.from_environment({**PROCESSOR, "IOTPM_MAX_CHANNELS_BY_TYPE": caps}).channel_caps()


def test_a_channel_cap_above_what_the_kernel_takes_is_refused() -> None:
    with pytest.raises(ValueError, match="max_channels"):
        Settings.from_environment({**PROCESSOR, "IOTPM_MAX_CHANNELS": "65"})
