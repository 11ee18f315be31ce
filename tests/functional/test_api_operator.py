"""The operator's routes on API Gateway proxy events, over in-memory stores the real processor filled.

Five devices, dev-0002 running hot from reading 400 (an open alarm); writes carry an
IAM principal in the request context as API Gateway's AWS_IAM authorization leaves it.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import pytest
from aws_lambda_powertools.event_handler import APIGatewayRestResolver

from iotpm.api.app import build_app
from iotpm.api.memory import MemoryQueries
from iotpm.api.server import LOCAL_OPERATOR, ApiServer, proxy_event
from iotpm.operator.memory import MemoryAudit, MemoryDocuments, MemoryRegistry
from iotpm.operator.ports import AuditEntry, Registration
from iotpm.operator.service import InvalidRegistrationsError, Operator
from iotpm.service.errors import StoreError
from iotpm.service.in_memory import MemoryPipeline
from iotpm.service.samples import batch

T0 = 1_790_000_000_000
NOW = T0 + 600_000
MIN = 60_000
ALICE = "arn:aws:sts::123456789012:assumed-role/iotpm-operator/alice"


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> int:
        return self.now


@pytest.fixture(scope="module")
def queries(memory_pipeline: Callable[..., MemoryPipeline]) -> MemoryQueries:
    s = memory_pipeline()
    p = s.processor()
    for i in range(10):
        out = p(batch(5, 60, start_ms=T0, first_seq=i * 60, faulty=[2], fault_from=400, seed=i), now_ms=NOW)
        assert not out.errors
    return MemoryQueries(s.states, s.readings, s.anomalies, s.rollups)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def operator(queries: MemoryQueries, clock: Clock) -> Operator:
    return Operator(MemoryRegistry(), MemoryDocuments(), MemoryAudit(), queries.device, clock)


@pytest.fixture
def app(queries: MemoryQueries, operator: Operator, clock: Clock) -> APIGatewayRestResolver:
    return build_app(queries, now_ms=clock, operator=operator)


def call(
    app: APIGatewayRestResolver, method: str, target: str, body: Any = None, *, who: str | None = ALICE,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any, dict[str, str]]:  # fmt: skip
    text = None if body is None else body if isinstance(body, str) else json.dumps(body)
    out = app.resolve(proxy_event(method, target, headers or {}, "127.0.0.1", text, who), None)
    merged = dict(out.get("headers") or {}) | {k: ", ".join(v) for k, v in (out.get("multiValueHeaders") or {}).items()}
    return out["statusCode"], json.loads(out["body"]), merged


def test_a_registration_is_written_read_back_and_audited(app: APIGatewayRestResolver, operator: Operator) -> None:
    operator.registry.put(Registration("gw-1", "plant-1", "line-2", "gateway"), None)  # the gateway it names
    assert call(app, "GET", "/devices/dev-0001/registration")[0] == 404
    reg = {"site": "plant-1", "line": "line-2", "device_type": "compressor", "gateway": "gw-1",
           "overrides": {"temperature": {"high": 95.0}}}  # fmt: skip
    status, body, _ = call(app, "PUT", "/devices/dev-0001/registration", reg)
    assert status == 200 and body["version"] == 1 and body["updated_by"] == ALICE and body["line"] == "line-2"
    status, got, _ = call(app, "GET", "/devices/dev-0001/registration")
    assert status == 200 and got == body and got["overrides"] == {"temperature": {"low": None, "high": 95.0}}
    status, again, _ = call(app, "PUT", "/devices/dev-0001/registration", {**reg, "line": "line-3"})
    assert again["version"] == 2
    entries = call(app, "GET", "/audit")[1]["items"]
    assert [(e["action"], e["subject"], e["who"]) for e in entries] == [("registration", "dev-0001", ALICE)] * 2
    assert entries[0]["before"]["line"] == "line-2" and entries[0]["after"]["line"] == "line-3"
    assert entries[1]["before"] is None


def test_a_registration_naming_a_gateway_that_is_not_a_registered_gateway_is_refused(
    app: APIGatewayRestResolver, operator: Operator
) -> None:
    operator.registry.put(Registration("pump-0001", "plant-1", "line-1", "pump"), None)
    reg = {"site": "plant-1", "line": "line-1", "device_type": "pump"}
    for gateway, why in (
        ("pump-0002", "'pump-0002' cannot be its own gateway"),
        ("pump-0001", "'pump-0001' is a 'pump', not a gateway"),  # it would let one device publish as another
        ("gw-typo", "'gw-typo' is not a registered device"),  # every reading its real gateway sent quarantined
    ):
        status, body, _ = call(app, "PUT", "/devices/pump-0002/registration", {**reg, "gateway": gateway})
        assert status == 400 and why in body["error"]["message"], body
    assert call(app, "GET", "/devices/pump-0002/registration")[0] == 404  # nothing stored
    assert call(app, "GET", "/audit")[1]["items"] == []
    operator.registry.put(Registration("gw-1", "plant-1", "line-1", "gateway"), None)
    status, body, _ = call(app, "PUT", "/devices/pump-0002/registration", {**reg, "gateway": "gw-1"})
    assert status == 200 and body["gateway"] == "gw-1"


def test_a_gateway_cannot_be_retyped_while_devices_name_it_nor_be_under_a_gateway(
    app: APIGatewayRestResolver, operator: Operator
) -> None:
    """Retyped, it would go on publishing for the devices still under it (review2 F2)."""
    gateway = {"site": "plant-1", "line": "line-1", "device_type": "gateway"}
    assert call(app, "PUT", "/devices/gw-1/registration", gateway)[0] == 200
    assert call(app, "PUT", "/devices/gw-2/registration", gateway)[0] == 200
    pump = {**gateway, "device_type": "pump"}
    assert call(app, "PUT", "/devices/dev-10/registration", {**pump, "gateway": "gw-1"})[0] == 200
    status, body, _ = call(app, "PUT", "/devices/gw-1/registration", pump)
    assert status == 400 and "'gw-1' is the gateway of 'dev-10'" in body["error"]["message"], body
    assert operator.registry.get("gw-1").device_type == "gateway"  # type: ignore[union-attr]
    status, body, _ = call(app, "PUT", "/devices/gw-3/registration", {**gateway, "gateway": "gw-2"})
    assert status == 400 and "cannot be under gateway 'gw-2'" in body["error"]["message"], body
    assert call(app, "PUT", "/devices/gw-2/registration", pump)[0] == 200  # no device under it: it may change
    assert call(app, "PUT", "/devices/dev-10/registration", pump)[0] == 200  # moved off gw-1 first
    assert call(app, "PUT", "/devices/gw-1/registration", pump)[0] == 200
    rows = [Registration("gw-4", "plant-1", "line-1", "gateway"), Registration("d-1", "p", "l", "pump", "gw-4")]
    operator.import_registrations(rows, ALICE)
    with pytest.raises(InvalidRegistrationsError) as refused:  # an import likewise, unless it moves them too
        operator.import_registrations([Registration("gw-4", "plant-1", "line-1", "pump")], ALICE)
    assert list(refused.value.problems) == ["gw-4"]
    retyped = [Registration("gw-4", "plant-1", "line-1", "pump"), Registration("d-1", "p", "l", "pump")]
    assert operator.import_registrations(retyped, ALICE) == 2


def test_an_import_checks_each_gateway_against_its_own_rows_and_the_registry_first(operator: Operator) -> None:
    operator.registry.put(Registration("pump-0001", "plant-1", "line-1", "pump"), None)
    operator.registry.put(Registration("gw-1", "plant-1", "line-1", "gateway"), None)
    rows = [
        Registration("pump-0002", "plant-1", "line-1", "pump", gateway="gw-2"),  # a gateway further down the file
        Registration("pump-0003", "plant-1", "line-1", "pump", gateway="gw-1"),  # one already registered
        Registration("gw-2", "plant-1", "line-1", "gateway"),
    ]
    bad = [
        Registration("pump-0004", "plant-1", "line-1", "pump", gateway="pump-0001"),
        Registration("pump-0005", "plant-1", "line-1", "pump", gateway="pump-0002"),  # a row of the file, not a gateway
        Registration("pump-0006", "plant-1", "line-1", "pump", gateway="pump-0006"),
    ]
    with pytest.raises(InvalidRegistrationsError) as refused:
        operator.import_registrations(rows + bad, ALICE)
    assert sorted(refused.value.problems) == ["pump-0004", "pump-0005", "pump-0006"]
    assert operator.registry.get("pump-0002") is None and operator.audit.page(0, NOW + 1, 10, None).items == []
    assert operator.import_registrations(rows, ALICE) == 3
    subjects = [e.subject for e in reversed(operator.audit.page(0, NOW + 1, 10, None).items)]
    assert subjects[0] == "gw-2" and sorted(subjects) == ["gw-2", "pump-0002", "pump-0003"]  # the gateway first


def test_a_write_is_refused_without_a_principal_or_with_a_bad_body(app: APIGatewayRestResolver) -> None:
    reg = {"site": "plant-1", "line": "line-2", "device_type": "pump"}
    status, body, _ = call(app, "PUT", "/devices/dev-0001/registration", reg, who=None)
    assert status == 403 and "IAM" in body["error"]["message"]
    assert call(app, "PUT", "/devices/dev-0001/registration", {**reg, "colour": "red"})[0] == 400
    assert call(app, "PUT", "/devices/dev-0001/registration", "{not json")[0] == 400
    assert call(app, "GET", "/devices/dev-0001/registration")[0] == 404  # nothing was stored
    assert call(app, "GET", "/audit")[1]["items"] == []


def test_limits_are_versioned_and_two_operators_cannot_overwrite_each_other(app: APIGatewayRestResolver) -> None:
    status, shipped, headers = call(app, "GET", "/config/limits")
    assert (
        status == 200 and headers["ETag"] == '"0"' and shipped["defaults"]["temperature"] == {"low": 10.0, "high": 80.0}
    )
    mine = {**shipped, "line": {"line-1": {"temperature": {"low": 10.0, "high": 60.0}}}}
    status, body, headers = call(app, "PUT", "/config/limits", mine, headers={"If-Match": '"0"'})
    assert status == 200 and headers["ETag"] == '"1"' and body["line"]["line-1"]["temperature"]["high"] == 60.0
    theirs = {**shipped, "device_type": {"pump": {"pressure": {"low": 20.0, "high": 120.0}}}}
    status, err, _ = call(app, "PUT", "/config/limits", theirs, headers={"If-Match": '"0"'})  # read before mine
    assert status == 412 and "version 1" in err["error"]["message"]
    assert call(app, "PUT", "/config/limits", theirs)[0] == 428  # no If-Match on an existing document
    assert call(app, "GET", "/config/limits")[1] == body
    status, _, headers = call(app, "PUT", "/config/limits", theirs, headers={"if-match": '"1"'})
    assert status == 200 and headers["ETag"] == '"2"'


def test_an_invalid_limits_document_is_refused_whole(app: APIGatewayRestResolver) -> None:
    bad = {
        "defaults": {"temperature": {"low": 10.0, "high": 80.0}},
        "line": {"line-1": {"pressure": {"low": 90, "high": 50}}},
    }
    status, err, _ = call(app, "PUT", "/config/limits", bad, headers={"If-Match": '"0"'})
    assert status == 400 and "low 90.0 must be below high 50.0" in err["error"]["message"]
    assert call(app, "PUT", "/config/limits", {"defaults": {}, "sites": {}}, headers={"If-Match": '"0"'})[0] == 400
    status, doc, headers = call(app, "GET", "/config/limits")
    assert headers["ETag"] == '"0"' and doc["line"] == {}
    assert call(app, "GET", "/audit")[1]["items"] == []


def test_the_device_shows_the_limits_in_effect_and_where_each_comes_from(app: APIGatewayRestResolver) -> None:
    limits = {"line": {"line-1": {"temperature": {"low": 5.0, "high": 60.0}}},
              "device_type": {"pump": {"pressure_psi": {"low": 20.0, "high": 120.0}}}}  # fmt: skip
    assert call(app, "PUT", "/config/limits", limits, headers={"If-Match": '"0"'})[0] == 200
    reg = {"site": "plant-1", "line": "line-1", "device_type": "pump", "overrides": {"vibration": {"high": 7.1}}}
    assert call(app, "PUT", "/devices/dev-0003/registration", reg)[0] == 200
    body = call(app, "GET", "/devices/dev-0003")[1]
    assert body["limits"] == {
        "temperature_c": {"low": 5.0, "high": 60.0, "source": "line:line-1"},
        "pressure_psi": {"low": 20.0, "high": 120.0, "source": "device_type:pump"},
        "vibration_mm_s": {"low": None, "high": 7.1, "source": "registration"},
    }
    other = call(app, "GET", "/devices/dev-0004")[1]["limits"]
    assert other["vibration_mm_s"] == {"low": None, "high": 5.0, "source": "default"}


def test_acknowledge_shelve_and_rebaseline_change_the_alarm_and_are_audited(
    app: APIGatewayRestResolver, clock: Clock
) -> None:
    assert call(app, "GET", "/devices/dev-0002")[1]["alarm_state"] == "unacknowledged"
    assert (
        call(app, "POST", "/devices/dev-0001/alarm/acknowledge", {"note": "?"})[0] == 409
    )  # dev-0001 has no open alarm
    status, body, _ = call(app, "POST", "/devices/dev-0002/alarm/acknowledge", {"note": "bearing, on my way"})
    assert status == 200 and body["state"] == "acknowledged" and body["acknowledged_by"] == ALICE
    until = "2026-09-21T16:00:00Z"  # about 1.5 h after NOW
    status, body, _ = call(app, "POST", "/devices/dev-0002/alarm/shelve", {"until": until, "reason": "repair"})
    assert status == 200 and body["state"] == "shelved" and body["shelved_until"] == until
    assert call(app, "GET", "/devices/dev-0002")[1]["alarm_state"] == "shelved"
    clock.now += 2 * 3_600_000  # the shelve ends by itself
    assert call(app, "GET", "/devices/dev-0002/alarm")[1]["state"] == "acknowledged"
    status, body, _ = call(app, "POST", "/devices/dev-0002/rebaseline", {})
    assert status == 200 and body["rebaseline_at"] is not None and body["rebaselined_by"] == ALICE
    actions = [(e["action"], e["subject"]) for e in call(app, "GET", "/audit")[1]["items"]]
    assert actions == [("rebaseline", "dev-0002"), ("shelve", "dev-0002"), ("acknowledge", "dev-0002")]


def test_shelving_is_bounded_and_needs_a_known_device(app: APIGatewayRestResolver) -> None:
    past = {"until": "2026-09-21T10:00:00Z", "reason": "r"}
    assert call(app, "POST", "/devices/dev-0002/alarm/shelve", past)[0] == 400
    far = {"until": "2026-12-31T00:00:00Z", "reason": "r"}
    assert call(app, "POST", "/devices/dev-0002/alarm/shelve", far)[0] == 400  # more than 30 days
    assert call(app, "POST", "/devices/dev-0002/alarm/shelve", {"until": "2026-09-21T16:00:00Z"})[0] == 400
    assert call(app, "POST", "/devices/nobody/alarm/shelve", {"until": "2026-09-21T16:00:00Z", "reason": "r"})[0] == 404
    assert call(app, "POST", "/devices/nobody/rebaseline", {})[0] == 404


def test_the_audit_trail_pages_and_filters_by_time(app: APIGatewayRestResolver, clock: Clock) -> None:
    reg = {"site": "plant-1", "line": "line-1", "device_type": "pump"}
    for i in range(5):
        clock.now = NOW + i * 60_000
        assert call(app, "PUT", f"/devices/dev-000{i}/registration", reg)[0] == 200
    seen, target = [], "/audit?limit=2"
    while True:
        body = call(app, "GET", target)[1]
        seen += [e["subject"] for e in body["items"]]
        if body["next_token"] is None:
            break
        target = f"/audit?limit=2&next_token={body['next_token']}"
    assert seen == [f"dev-000{i}" for i in reversed(range(5))]
    window = call(app, "GET", "/audit?since=2026-09-21T14:24:00Z&until=2026-09-21T14:26:00Z")[1]["items"]
    assert [e["subject"] for e in window] == ["dev-0002", "dev-0001"]
    assert call(app, "GET", "/audit?since=2026-09-21T14:26:00Z&until=2026-09-21T14:24:00Z")[0] == 400


def test_without_operator_stores_the_routes_say_so(queries: MemoryQueries) -> None:
    app = build_app(queries, now_ms=lambda: NOW)
    status, body, _ = call(app, "GET", "/config/limits")
    assert status == 503 and "not configured" in body["error"]["message"]
    assert (
        "limits" not in call(app, "GET", "/devices/dev-0001")[1]
        or call(app, "GET", "/devices/dev-0001")[1]["limits"] is None
    )


def test_locally_a_read_key_cannot_write_and_the_operator_credential_can(app: APIGatewayRestResolver) -> None:
    server = ApiServer(lambda e, c: app.resolve(dict(e), c), "read-key", operator_key="op-key")
    try:
        reg = json.dumps({"site": "plant-1", "line": "line-1", "device_type": "pump"})
        target = "/devices/dev-0001/registration"
        status, _, _ = server.respond("PUT", target, {"x-api-key": "read-key"}, "127.0.0.1", reg)
        assert status == 403
        wrong = "Basic " + base64.b64encode(b"operator:read-key").decode()
        assert server.respond("PUT", target, {"Authorization": wrong}, "127.0.0.1", reg)[0] == 403
        good = "Basic " + base64.b64encode(b"operator:op-key").decode()
        status, _, payload = server.respond("PUT", target, {"Authorization": good}, "127.0.0.1", reg)
        assert status == 200 and json.loads(payload)["updated_by"] == LOCAL_OPERATOR
        assert server.respond("GET", target, {"Authorization": good}, "127.0.0.1")[0] == 403  # reads need the key
        assert server.respond("GET", target, {"x-api-key": "read-key"}, "127.0.0.1")[0] == 200
    finally:
        server.httpd.server_close()  # never started: nothing to shut down


def test_over_http_the_operator_credential_writes_and_the_read_key_reads(app: APIGatewayRestResolver) -> None:
    import urllib.error
    import urllib.request

    from iotpm.emulator.control import free_port

    server = ApiServer(lambda e, c: app.resolve(dict(e), c), "read-key", free_port(), operator_key="op-key").start()
    basic = "Basic " + base64.b64encode(b"operator:op-key").decode()

    def send(method: str, path: str, body: dict[str, Any] | None, headers: dict[str, str]) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        # as curl -d, urllib says form-urlencoded unless told: the body is JSON
        headers = headers | {"Content-Type": "application/json"}
        req = urllib.request.Request(server.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    try:
        reg = {"site": "plant-1", "line": "line-2", "device_type": "pump"}
        assert send("PUT", "/devices/dev-0001/registration", reg, {"x-api-key": "read-key"})[0] == 403
        status, body = send("PUT", "/devices/dev-0001/registration", reg, {"Authorization": basic})
        assert status == 200 and body["line"] == "line-2" and body["updated_by"] == LOCAL_OPERATOR
        status, audit = send("GET", "/audit", None, {"x-api-key": "read-key"})
        assert status == 200 and [e["who"] for e in audit["items"]] == [LOCAL_OPERATOR]
    finally:
        server.stop()


def test_the_open_alarms_raise_carries_its_state_and_the_device_shows_it(app: APIGatewayRestResolver) -> None:
    detail = call(app, "GET", "/devices/dev-0002")[1]
    assert detail["open_alarm"]["state"] == "unacknowledged"
    assert call(app, "POST", "/devices/dev-0002/alarm/acknowledge", {"note": "seen"})[0] == 200
    detail = call(app, "GET", "/devices/dev-0002")[1]
    assert detail["open_alarm"]["state"] == "acknowledged" == detail["alarm_state"]
    rows = call(app, "GET", "/devices/dev-0002/anomalies?from=2026-09-21T00:00:00Z")[1]["items"]
    raises = [(r["time"], r["state"]) for r in rows if r["kind"] == "raise"]
    assert (detail["alarm_since"], "acknowledged") in raises
    assert all(s == "cleared" for t, s in raises if t != detail["alarm_since"])
    assert all(r["state"] is None for r in rows if r["kind"] != "raise")


def test_detector_settings_are_a_versioned_document_without_the_limits(app: APIGatewayRestResolver) -> None:
    status, shipped, headers = call(app, "GET", "/config/detector")
    assert status == 200 and headers["ETag"] == '"0"' and shipped["warmup"] == 100 and "thresholds" not in shipped
    mine = {**shipped, "alarm": {**shipped["alarm"], "min_duration": 3}}
    status, body, headers = call(app, "PUT", "/config/detector", mine, headers={"If-Match": '"0"'})
    assert status == 200 and headers["ETag"] == '"1"' and body["alarm"]["min_duration"] == 3
    assert call(app, "PUT", "/config/detector", mine)[0] == 428
    status, err, _ = call(app, "PUT", "/config/detector", {**mine, "warmup": 5}, headers={"If-Match": '"1"'})
    assert status == 400 and "warmup" in err["error"]["message"]
    status, err, _ = call(app, "PUT", "/config/detector", {**mine, "thresholds": {}}, headers={"If-Match": '"1"'})
    assert status == 400 and "/config/limits" in err["error"]["message"]
    assert call(app, "GET", "/config/detector")[1]["alarm"]["min_duration"] == 3
    assert [e["subject"] for e in call(app, "GET", "/audit")[1]["items"]] == ["detector"]


def test_the_device_shows_the_detector_settings_in_effect_for_its_type(app: APIGatewayRestResolver) -> None:
    shipped = call(app, "GET", "/config/detector")[1]
    assert call(app, "GET", "/devices/dev-0004")[1]["detector"] == {"settings": shipped, "source": "default"}
    doc = {"defaults": {"alarm": {"min_duration": 3}}, "device_types": {"compressor": {"alarm": {"min_duration": 5}}}}
    assert call(app, "PUT", "/config/detector", doc, headers={"If-Match": '"0"'})[0] == 200
    reg = {"site": "plant-1", "line": "line-1", "device_type": "compressor"}
    assert call(app, "PUT", "/devices/dev-0003/registration", reg)[0] == 200
    mine, other = (call(app, "GET", f"/devices/{d}")[1]["detector"] for d in ("dev-0003", "dev-0004"))
    assert mine["source"] == "device_type:compressor" and mine["settings"]["alarm"]["min_duration"] == 5
    assert other["source"] == "document:v1" and other["settings"]["alarm"]["min_duration"] == 3
    assert {k: v for k, v in mine["settings"].items() if k != "alarm"} == {
        k: v for k, v in shipped.items() if k != "alarm"
    }


def test_a_stored_detector_document_that_no_longer_validates_is_not_shown_as_in_effect(
    queries: MemoryQueries, clock: Clock
) -> None:
    documents = MemoryDocuments()
    app = build_app(queries, now_ms=clock, operator=Operator(MemoryRegistry(), documents, MemoryAudit(),
                                                             queries.device, clock))  # fmt: skip
    documents.put("detector", {"no_such_setting": 1}, None, "someone", NOW)  # written by an older release
    shown = call(app, "GET", "/devices/dev-0004")[1]["detector"]
    assert "invalid" in shown["source"] and "last good" in shown["source"]


@pytest.mark.parametrize("defaults", ["abc", 5, [1, 2], [["warmup", 200]]])
def test_a_defaults_section_that_is_not_an_object_is_a_400_naming_it(
    app: APIGatewayRestResolver, defaults: Any
) -> None:
    status, err, _ = call(app, "PUT", "/config/detector", {"defaults": defaults}, headers={"If-Match": '"0"'})
    assert status == 400 and "defaults" in err["error"]["message"]
    assert call(app, "GET", "/config/detector")[2]["ETag"] == '"0"'  # nothing stored


def test_the_fleet_wide_alarms_carry_each_raises_state(app: APIGatewayRestResolver) -> None:
    since = "/anomalies?since=2026-09-21T00:00:00Z&limit=500"
    detail = call(app, "GET", "/devices/dev-0002")[1]

    def states() -> dict[str, set[str | None]]:
        rows = call(app, "GET", since)[1]["items"]
        out: dict[str, set[str | None]] = {"open": set(), "other": set(), "events": set()}
        for r in rows:
            key = "events" if r["kind"] != "raise" else "open" if r["time"] == detail["alarm_since"] else "other"
            out[key].add(r["state"])
        return out

    first = states()
    assert first["open"] == {"unacknowledged"} and first["other"] <= {"cleared"} and first["events"] <= {None}
    assert call(app, "POST", "/devices/dev-0002/alarm/acknowledge", {"note": "seen"})[0] == 200
    assert states()["open"] == {"acknowledged"}
    shelve = {"until": "2026-09-21T16:00:00Z", "reason": "repair"}
    assert call(app, "POST", "/devices/dev-0002/alarm/shelve", shelve)[0] == 200
    assert states()["open"] == {"shelved"}


def test_the_fleet_wide_alarms_read_their_devices_together_not_one_by_one(
    queries: MemoryQueries, operator: Operator, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[int] = []
    batched = queries.device_records
    monkeypatch.setattr(queries, "device", lambda d: pytest.fail(f"one device read ({d}) per raise"))
    monkeypatch.setattr(queries, "device_records", lambda ids: reads.append(len(ids)) or batched(ids))
    rows = call(build_app(queries, now_ms=clock, operator=operator), "GET", "/anomalies?since=2026-09-21T00:00:00Z")
    raised = {r["device_id"] for r in rows[1]["items"] if r["kind"] == "raise"}
    assert rows[0] == 200 and raised and reads == [len(raised)]


def test_in_write_behind_the_fleet_wide_alarms_see_the_open_alarm_the_log_holds(
    memory_pipeline: Callable[..., MemoryPipeline], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The device records are written at compaction: until then the open alarm is in the batch log,
    and the fleet-wide list must say what the device's own routes say, not 'cleared'."""
    from iotpm.service.processor import ProcessorSettings

    s = memory_pipeline(behind=True)
    p = s.processor(settings=ProcessorSettings(compact_interval_s=3600), batch_log=s.log, snapshots=s.snapshots)
    real_put, throttled = s.states.put_many, {"on": False}

    def put_many(records: Any, **kw: Any) -> Any:  # the devices table throttled from the raising batch on
        if throttled["on"]:
            return {r.device_id: StoreError("throttled", code="ThrottlingException") for r in records}
        return real_put(records, **kw)

    monkeypatch.setattr(s.states, "put_many", put_many)
    for i in range(10):
        throttled["on"] = i >= 6
        out = p(batch(5, 60, start_ms=T0, first_seq=i * 60, faulty=[2], fault_from=400, seed=i), now_ms=T0 + i)
        assert not out.errors
    stored = s.states.items.get("dev-0002")
    assert stored is None or not stored.alarm_open  # the record does not hold the alarm yet
    q = MemoryQueries(s.states, s.readings, s.anomalies, s.rollups, s.log)
    ids = [f"dev-{i:04d}" for i in range(5)]
    assert q.device_records(ids) == {d: q.device(d) for d in ids}  # one read of the log gives each its view
    app = build_app(q, now_ms=lambda: NOW, operator=Operator(MemoryRegistry(), MemoryDocuments(), MemoryAudit(),
                                                               q.device, lambda: NOW))  # fmt: skip
    own = call(app, "GET", "/devices/dev-0002")[1]
    assert own["alarm_state"] == "unacknowledged"
    rows = call(app, "GET", "/anomalies?since=2026-09-21T00:00:00Z&limit=500")[1]["items"]
    fleet = [r["state"] for r in rows if r["kind"] == "raise" and r["device_id"] == "dev-0002"]
    assert (
        fleet
        and fleet[0] == "unacknowledged"
        and own["alarm_since"]
        in {r["time"] for r in rows if r["device_id"] == "dev-0002" and r["state"] == "unacknowledged"}
    )


def test_the_fleet_wide_alarms_without_operator_stores_carry_no_state(queries: MemoryQueries) -> None:
    rows = call(build_app(queries, now_ms=lambda: NOW), "GET", "/anomalies?since=2026-09-21T00:00:00Z")[1]["items"]
    assert rows and all(r["state"] is None for r in rows)


@pytest.mark.parametrize("skew_h", [5, -5])
def test_an_acknowledgement_names_its_incident_whatever_the_devices_clock(
    skew_h: int, memory_pipeline: Callable[..., MemoryPipeline]
) -> None:
    """The device's clock is hours off the server's: acknowledging compares incidents, not clocks."""
    s = memory_pipeline()
    p, st = s.processor(), s.states
    device_t0 = T0 + skew_h * 3_600_000  # the devices' clocks; the server's is T0 + ...

    def run(i: int, faulty: list[int]) -> None:
        out = p(batch(3, 60, start_ms=device_t0, first_seq=i * 60, faulty=faulty, seed=i), now_ms=T0 + (i + 1) * MIN)
        assert not out.errors

    for i in range(3):
        run(i, [1])
    queries, clock = MemoryQueries(st, s.readings, s.anomalies, s.rollups), Clock()
    clock.now = T0 + 3 * MIN
    app = build_app(queries, now_ms=clock, operator=Operator(MemoryRegistry(), MemoryDocuments(), MemoryAudit(),
                                                             queries.device, clock))  # fmt: skip
    assert call(app, "GET", "/devices/dev-0001/alarm")[1]["state"] == "unacknowledged"
    status, body, _ = call(app, "POST", "/devices/dev-0001/alarm/acknowledge", {"note": "seen"})
    assert status == 200 and body["state"] == "acknowledged"
    assert call(app, "GET", "/devices/dev-0001")[1]["open_alarm"]["state"] == "acknowledged"
    first_since = st.items["dev-0001"].alarm_since_ms
    for i in range(3, 20):  # normal again: the alarm clears; then hot again: a new incident
        run(i, [1] if i >= 16 else [])
    record = st.items["dev-0001"]
    assert record.alarm_open and record.alarm_since_ms != first_since, "a second incident"
    clock.now = T0 + 20 * MIN
    assert call(app, "GET", "/devices/dev-0001/alarm")[1]["state"] == "unacknowledged"


def test_a_rebaselines_note_is_kept_in_the_audit_trail(app: APIGatewayRestResolver) -> None:
    status, _, _ = call(app, "POST", "/devices/dev-0002/rebaseline", {"note": "bearing replaced"})
    assert status == 200
    [entry] = call(app, "GET", "/audit")[1]["items"]
    assert entry["action"] == "rebaseline" and entry["after"]["rebaseline_note"] == "bearing replaced"


class FailingAudit(MemoryAudit):
    def append(self, entry: AuditEntry) -> None:
        raise StoreError("the audit table is unavailable")


def test_a_write_whose_audit_entry_cannot_be_written_is_not_made(queries: MemoryQueries, clock: Clock) -> None:
    operator = Operator(MemoryRegistry(), MemoryDocuments(), FailingAudit(), queries.device, clock)
    app = build_app(queries, now_ms=clock, operator=operator)
    reg = {"site": "plant-1", "line": "line-2", "device_type": "pump"}
    assert call(app, "PUT", "/devices/dev-0001/registration", reg)[0] == 503
    assert call(app, "GET", "/devices/dev-0001/registration")[0] == 404
    assert call(app, "POST", "/devices/dev-0002/alarm/acknowledge", {"note": "x"})[0] == 503
    assert call(app, "GET", "/devices/dev-0002/alarm")[1]["state"] == "unacknowledged"
