"""The operator stores' contract, on the in-memory fakes and on the DynamoDB adapters (emulator, DynamoDB Local).

What a store promises the operator service: a write over another version than the
one it names is refused (so two operators cannot overwrite each other), what is
written reads back as it was, an audited write lands with its audit entry or not at all
(one TransactWriteItems in DynamoDB), and the audit log pages newest first.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from iotpm.adapters.registry import (
    DynamoAudit,
    DynamoDocuments,
    DynamoRegistry,
    OperatorTables,
    create_operator_tables,
)
from iotpm.operator.memory import MemoryAudit, MemoryDocuments, MemoryRegistry
from iotpm.operator.ports import Audited, AuditEntry, AuditLog, Documents, Registration, Registry
from iotpm.service.errors import ConflictError
from iotpm.testing.clock import recent

from .aws import DYNAMODB_BACKENDS, client

T0 = recent(1_790_000_000_000)  # a day or two ago: DynamoDB Local sweeps expired items


@dataclass
class Stores:
    registry: Registry
    documents: Documents
    audit: AuditLog


@pytest.fixture(params=["memory", *DYNAMODB_BACKENDS])
def stores(request: pytest.FixtureRequest) -> Iterator[Stores]:
    if request.param == "memory":
        yield Stores(MemoryRegistry(), MemoryDocuments(), MemoryAudit())
        return
    endpoint = request.getfixturevalue("endpoint")
    url = request.getfixturevalue("dynamodb_local") if request.param == "dynamodb-local" else endpoint
    ddb = client("dynamodb", url)
    tag = uuid.uuid4().hex[:8]
    names = OperatorTables(f"t{tag}-registry", f"t{tag}-config", f"t{tag}-audit")
    create_operator_tables(ddb, names)
    yield Stores(DynamoRegistry(ddb, names.registry), DynamoDocuments(ddb, names.config), DynamoAudit(ddb, names.audit))


def reg(device_id: str, line: str = "line-1", gateway: str | None = None) -> Registration:
    return Registration(device_id, "plant-1", line, "pump", gateway, {"temperature": {"low": None, "high": 70.0}},
                        updated_ms=T0, updated_by="alice")  # fmt: skip


def test_a_registration_reads_back_and_a_write_over_a_stale_version_is_refused(stores: Stores) -> None:
    first = stores.registry.put(reg("dev-1", gateway="gw-1"), None)
    assert first.version == 1
    got = stores.registry.get("dev-1")
    assert got == first and got.gateway == "gw-1" and got.overrides == {"temperature": {"low": None, "high": 70.0}}
    with pytest.raises(ConflictError):
        stores.registry.put(reg("dev-1", line="line-2"), None)  # it exists: not new
    second = stores.registry.put(reg("dev-1", line="line-2"), 1)
    assert second.version == 2 and stores.registry.get("dev-1") == second
    with pytest.raises(ConflictError):
        stores.registry.put(reg("dev-1", line="line-3"), 1)  # someone wrote version 2 meanwhile
    assert stores.registry.get("dev-1") == second
    assert stores.registry.get("dev-9") is None


def test_registrations_read_many_at_once(stores: Stores) -> None:
    for i in range(105):  # more than one BatchGetItem takes
        stores.registry.put(reg(f"dev-{i:03d}", gateway=None), None)
    got = stores.registry.get_many([f"dev-{i:03d}" for i in range(110)] + ["dev-000"])
    assert sorted(got) == [f"dev-{i:03d}" for i in range(105)]
    assert got["dev-007"].gateway is None and got["dev-007"].version == 1


def test_the_devices_under_a_gateway_are_listed_in_id_order_up_to_a_limit(stores: Stores) -> None:
    for i in (3, 1, 2, 4):
        stores.registry.put(reg(f"dev-{i}", gateway="gw-1"), None)
    stores.registry.put(reg("dev-9", gateway="gw-2"), None)
    stores.registry.put(reg("dev-8"), None)
    assert stores.registry.under("gw-1", 3) == ["dev-1", "dev-2", "dev-3"]
    assert stores.registry.under("gw-2") == ["dev-9"] and stores.registry.under("gw-3") == []


def test_a_document_is_versioned_and_refuses_a_stale_writer(stores: Stores) -> None:
    assert stores.documents.get("limits") is None
    one = stores.documents.put("limits", {"defaults": {"temperature": {"low": 5.0, "high": 70.0}}}, None, "a", T0)
    assert (one.version, one.updated_by, one.updated_ms) == (1, "a", T0)
    with pytest.raises(ConflictError):
        stores.documents.put("limits", {"x": 1}, None, "b", T0 + 1)
    two = stores.documents.put("limits", {"defaults": {}}, 1, "b", T0 + 2)
    with pytest.raises(ConflictError):
        stores.documents.put("limits", {"x": 2}, 1, "c", T0 + 3)  # b wrote version 2 first
    assert stores.documents.get("limits") == two and two.body == {"defaults": {}}
    stores.documents.put("alarm/dev-1", {"note": "é ✓"}, None, "a", T0)
    many = stores.documents.get_many(["limits", "alarm/dev-1", "alarm/dev-2"])
    assert sorted(many) == ["alarm/dev-1", "limits"] and many["alarm/dev-1"].body == {"note": "é ✓"}


def entry(entry_id: str, subject: str, after: dict[str, Any] | None) -> AuditEntry:
    return AuditEntry(T0, entry_id, "alice", "registration", subject, None, after)


def test_an_audited_registration_lands_with_its_entry_or_not_at_all(stores: Stores) -> None:
    first = stores.registry.put(reg("dev-1"), None, Audited(stores.audit, entry("e1", "dev-1", {"version": 1})))
    assert first.version == 1
    with pytest.raises(ConflictError):  # a stale version: neither the change nor its entry
        stores.registry.put(reg("dev-1", line="line-2"), None, Audited(stores.audit, entry("e2", "dev-1", None)))
    with pytest.raises(ConflictError):  # the entry cannot be written (its id exists): the change is not made
        stores.registry.put(reg("dev-1", line="line-3"), 1, Audited(stores.audit, entry("e1", "dev-1", None)))
    assert stores.registry.get("dev-1") == first
    entries = stores.audit.page(0, T0 + 1, 10, None).items
    assert [(e.entry_id, e.after) for e in entries] == [("e1", {"version": 1})]


def test_an_audited_document_lands_with_its_entry_or_not_at_all(stores: Stores) -> None:
    one = stores.documents.put("limits", {"a": 1}, None, "alice", T0, Audited(stores.audit, entry("d1", "limits", {})))
    with pytest.raises(ConflictError):
        stores.documents.put("limits", {"a": 2}, 7, "bob", T0, Audited(stores.audit, entry("d2", "limits", None)))
    with pytest.raises(ConflictError):
        stores.documents.put("limits", {"a": 3}, 1, "bob", T0, Audited(stores.audit, entry("d1", "limits", None)))
    assert stores.documents.get("limits") == one
    two = stores.documents.put("limits", {"a": 4}, 1, "bob", T0, Audited(stores.audit, entry("d3", "limits", {"a": 4})))
    assert two.version == 2 and stores.documents.get("limits") == two
    assert [e.entry_id for e in stores.audit.page(0, T0 + 1, 10, None).items] == ["d3", "d1"]


def test_the_audit_log_pages_newest_first_within_the_range(stores: Stores) -> None:
    for i in range(7):
        stores.audit.append(AuditEntry(T0 + i * 1000, f"e{i}", "alice", "shelve", "dev-1", None, {"i": i}))
    stores.audit.append(AuditEntry(T0 + 2000, "e2b", "bob", "acknowledge", "dev-2", {"a": [1]}, None))
    seen, cursor = [], None
    while True:
        page = stores.audit.page(T0 + 1000, T0 + 6000, 2, cursor)
        seen += [(e.ts_ms - T0, e.entry_id) for e in page.items]
        cursor = page.cursor
        if cursor is None:
            break
    assert seen == [(5000, "e5"), (4000, "e4"), (3000, "e3"), (2000, "e2b"), (2000, "e2"), (1000, "e1")]
    bob = stores.audit.page(T0 + 2000, T0 + 2001, 10, None).items
    assert [(e.who, e.before, e.after) for e in bob] == [("bob", {"a": [1]}, None), ("alice", None, {"i": 2})]


def test_devices_import_registers_on_the_emulator_as_the_callers_principal(endpoint: str, tmp_path: Any) -> None:
    from typer.testing import CliRunner

    from iotpm.cli.app import app

    ddb = client("dynamodb", endpoint)
    tag = uuid.uuid4().hex[:8]
    names = OperatorTables(f"t{tag}-registry", f"t{tag}-config", f"t{tag}-audit")
    create_operator_tables(ddb, names)
    csv = tmp_path / "registry.csv"
    head = "device_id,site,line,device_type,gateway\npump-1,plant-1,line-1,pump,\n"
    tables = ["--registry-table", names.registry, "--config-table", names.config, "--audit-table", names.audit]
    csv.write_text(head + "motor-2,plant-1,line-2,motor,gw-1\n")
    res = CliRunner().invoke(app, ["devices", "import", str(csv), *tables, "--endpoint-url", endpoint])
    assert res.exit_code == 2 and "line 3: gateway: 'gw-1' is not a registered device" in res.output, res.output
    assert DynamoRegistry(ddb, names.registry).get_many(["pump-1", "motor-2"]) == {}  # nothing written
    DynamoRegistry(ddb, names.registry).put(Registration("gw-1", "plant-1", "line-2", "gateway"), None)
    res = CliRunner().invoke(app, ["devices", "import", str(csv), *tables, "--endpoint-url", endpoint])
    assert res.exit_code == 0, res.output
    got = DynamoRegistry(ddb, names.registry).get_many(["pump-1", "motor-2"])
    assert {d: (r.line, r.gateway) for d, r in got.items()} == {
        "pump-1": ("line-1", None),
        "motor-2": ("line-2", "gw-1"),
    }
    entries = DynamoAudit(ddb, names.audit).page(0, 4_000_000_000_000, 10, None).items
    assert sorted(e.subject for e in entries) == ["motor-2", "pump-1"]
    assert all(e.who.startswith("arn:aws:") and e.action == "registration" for e in entries)
