"""``iotpm devices import``: the registry from a CSV, all rows checked before anything is written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from iotpm.adapters import registry
from iotpm.cli.app import app
from iotpm.cli.devices import read_registrations
from iotpm.operator.memory import MemoryAudit, MemoryDocuments, MemoryRegistry
from iotpm.operator.ports import Registration

runner = CliRunner()
TABLES = ["--registry-table", "r", "--config-table", "c", "--audit-table", "a"]
GOOD = (
    "device_id,site,line,device_type,gateway,overrides\n"
    "pump-1,plant-1,line-1,pump,,\n"
    'motor-7,plant-1,line-2,motor,gw-1,"{""vibration"": {""high"": 7.1}}"\n'
)


@pytest.fixture
def stores(monkeypatch: pytest.MonkeyPatch) -> tuple[MemoryRegistry, MemoryAudit]:
    reg, audit = MemoryRegistry(), MemoryAudit()

    def connect(names: Any, region: Any = None, endpoint_url: Any = None) -> Any:
        assert (names.registry, names.config, names.audit) == ("r", "c", "a")
        return reg, MemoryDocuments(), audit, "arn:aws:iam::123456789012:user/admin"

    monkeypatch.setattr(registry, "connect", connect)
    return reg, audit


def test_the_rows_are_registered_and_audited_and_an_unchanged_one_is_not_written_again(
    tmp_path: Path, stores: tuple[MemoryRegistry, MemoryAudit]
) -> None:
    reg, audit = stores
    reg.put(Registration("gw-1", "plant-1", "line-2", "gateway"), None)  # the gateway motor-7 names
    csv = tmp_path / "registry.csv"
    csv.write_text(GOOD)
    res = runner.invoke(app, ["devices", "import", str(csv), *TABLES])
    assert res.exit_code == 0, res.output
    assert "registered 2 of 2" in res.output
    motor = reg.get("motor-7")
    assert motor is not None and (motor.line, motor.gateway, motor.overrides) == (
        "line-2", "gw-1", {"vibration": {"low": None, "high": 7.1}},
    )  # fmt: skip
    assert reg.get("pump-1") is not None and reg.items["pump-1"].gateway is None
    csv.write_text(GOOD.replace("pump-1,plant-1,line-1", "pump-1,plant-1,line-3"))
    res = runner.invoke(app, ["devices", "import", str(csv), *TABLES])
    assert res.exit_code == 0 and "registered 1 of 2" in res.output
    assert [(e.subject, e.who.endswith("user/admin")) for e in audit.entries] == [
        ("pump-1", True), ("motor-7", True), ("pump-1", True),
    ]  # fmt: skip
    assert audit.entries[-1].before is not None and audit.entries[-1].before["line"] == "line-1"


def test_a_file_with_an_invalid_row_writes_nothing(tmp_path: Path, stores: tuple[MemoryRegistry, MemoryAudit]) -> None:
    reg, audit = stores
    csv = tmp_path / "registry.csv"
    csv.write_text(GOOD + "bad id!,plant-1,line-1,pump,,\npump-9,plant-1,,pump,,\npump-1,plant-1,line-1,pump,,\n")
    res = runner.invoke(app, ["devices", "import", str(csv), *TABLES])
    assert res.exit_code == 2
    for expected in ("line 4: device_id 'bad id!'", "line 5: line:", "line 6: device 'pump-1' is listed twice"):
        assert expected in res.output
    assert reg.items == {} and audit.entries == []


def test_a_gateway_must_be_a_row_or_a_registered_gateway_and_the_refused_rows_are_named(
    tmp_path: Path, stores: tuple[MemoryRegistry, MemoryAudit]
) -> None:
    reg, audit = stores
    reg.put(Registration("pump-0001", "plant-1", "line-1", "pump"), None)
    csv = tmp_path / "registry.csv"
    head = "device_id,site,line,device_type,gateway\n"
    csv.write_text(head + "pump-0002,plant-1,line-1,pump,pump-0002\npump-0003,plant-1,line-1,pump,pump-0002\n")
    res = runner.invoke(app, ["devices", "import", str(csv), *TABLES, "--dry-run"])  # the file alone refuses these
    assert res.exit_code == 2
    assert "line 2: gateway: 'pump-0002' cannot be its own gateway" in res.output
    assert "line 3: gateway: 'pump-0002' is a 'pump', not a gateway" in res.output
    rows = (
        "pump-0002,plant-1,line-1,pump,gw-1\npump-0003,plant-1,line-1,pump,pump-0001\npump-0004,plant-1,line-1,pump,\n"
    )
    csv.write_text(head + rows)  # gateways the registry refuses: neither a row nor a registered gateway
    res = runner.invoke(app, ["devices", "import", str(csv), *TABLES])
    assert res.exit_code == 2 and "nothing written" in res.output
    assert "line 2: gateway: 'gw-1' is not a registered device" in res.output
    assert "line 3: gateway: 'pump-0001' is a 'pump', not a gateway" in res.output
    assert set(reg.items) == {"pump-0001"} and audit.entries == []
    csv.write_text(head + rows.replace("pump-0001\n", "gw-1\n") + "gw-1,plant-1,line-1,gateway,\n")  # listed last
    res = runner.invoke(app, ["devices", "import", str(csv), *TABLES])
    assert res.exit_code == 0 and "registered 4 of 4" in res.output, res.output
    assert audit.entries[0].subject == "gw-1"  # written before the devices that name it


def test_the_header_must_name_the_required_columns(tmp_path: Path) -> None:
    csv = tmp_path / "registry.csv"
    csv.write_text("device_id,site\npump-1,plant-1\n")
    with pytest.raises(ValueError, match="lacks line, device_type"):
        read_registrations(csv)
    csv.write_text(GOOD.replace('{""vibration""', '{""vibration"" oops'))
    with pytest.raises(ValueError, match="line 3"):
        read_registrations(csv)
