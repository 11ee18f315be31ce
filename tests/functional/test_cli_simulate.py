"""``iotpm simulate``'s topic: AWS IoT Core's device policy allows a thing only its Basic Ingest topic."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from iotpm.cli.app import app
from iotpm.cli.simulate import basic_ingest_rule, twin_rule

AWS = "a1b2c3d4e5f6g7-ats.iot.eu-west-1.amazonaws.com"


@pytest.mark.parametrize("endpoint", [AWS, "iot.plant.example.com", "10.0.0.7"])
def test_without_rule_an_endpoint_elsewhere_is_refused_naming_the_terraform_output(endpoint: str) -> None:
    with pytest.raises(ValueError, match="telemetry_rule_name") as refused:
        basic_ingest_rule(endpoint, None)
    assert endpoint in str(refused.value)


@pytest.mark.parametrize("endpoint", ["127.0.0.1", "localhost", "::1", "[::1]"])
def test_a_broker_on_this_machine_takes_the_twins_rule_or_else_the_plain_topic(endpoint: str) -> None:
    assert basic_ingest_rule(endpoint, None, "iotpm_local_telemetry") == "iotpm_local_telemetry"
    assert basic_ingest_rule(endpoint, None) is None


def test_the_twins_rule_is_read_from_its_record_when_its_broker_is_on_that_port(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IOTPM_HOME", str(tmp_path))
    assert twin_rule(8883) is None  # no twin
    (tmp_path / "local").mkdir()
    record = {"broker": {"host": "127.0.0.1", "port": 8883, "rule_name": "iotpm_local_telemetry"}}
    (tmp_path / "local" / "services.json").write_text(json.dumps(record))
    assert twin_rule(8883) == "iotpm_local_telemetry" and twin_rule(18883) is None


def test_a_rule_given_is_used_and_an_empty_one_asks_for_the_plain_topic() -> None:
    assert basic_ingest_rule(AWS, "iotpm_dev_telemetry") == "iotpm_dev_telemetry"
    assert basic_ingest_rule(AWS, "") is None


def test_the_command_refuses_aws_without_rule_before_connecting(tmp_path: Path) -> None:
    for module in ("awscrt", "awsiot", "cryptography"):  # the command needs them before it checks anything
        pytest.importorskip(module, reason="iotpm simulate needs the local extra")
    args = ["simulate", "--endpoint", AWS, "--certs", str(tmp_path), "--ca", str(tmp_path / "ca.pem")]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 2
    assert "--rule is needed" in res.output and "telemetry_rule_name" in res.output
    res = CliRunner().invoke(app, [*args, "--rule", "iotpm_dev_telemetry"])
    assert res.exit_code == 2 and "no certificate for" in res.output  # past the topic: the certificates next
