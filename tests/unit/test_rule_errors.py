"""The replay makes the records the topic rule makes (held to the local bridge, which the Terraform
rule is held to), reads AWS IoT's error action messages, and keeps PutRecords within its limits."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iotpm.adapters.rule_errors import (
    MAX_BYTES,
    MAX_RECORDS,
    THING_FIELD,
    THING_SEGMENT,
    UnreadableMessageError,
    _chunks,
    parse_error_message,
    rule_record,
)
from iotpm.local import bridge
from iotpm.models.validation import THING_KEY

PAYLOADS = [
    b'{"device_id": "pump-0000", "seq": 1, "temperature_c": 40.5}',
    b'{"device_id":"pump-0000","seq":1,"temperature_c":40.5}',  # compact, as the simulator sends: the fast path
    b'{"device_id":"pump-0000","temperature_c":1e16,"note":"caf\xc3\xa9\x7f"}',  # json writes 1e+16, \u00e9
    b'{"device_id": "other", "thing_name": "forged"}',  # the rule's thing_name wins over the payload's
    b"[1, 2, 3]",
    b"not json",
    b"\xff\xfe",
    b'"a string"',
]


@pytest.mark.parametrize("payload", PAYLOADS)
@pytest.mark.parametrize(
    "topic", ["iotpm/pump-0000/telemetry", "$aws/rules/iotpm_prod_telemetry/iotpm/pump-0000/telemetry", "odd"]
)
def test_a_replayed_record_is_the_one_the_rule_makes(topic: str, payload: bytes) -> None:
    assert rule_record(topic, payload) == bridge.enrich(topic, payload)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(
    obj=st.dictionaries(
        st.sampled_from(["device_id", "seq", "temperature_c", "x", "thing_name"]), JSON, min_size=1, max_size=4
    ),
    form=st.sampled_from([{"separators": (",", ":")}, {}, {"ensure_ascii": False, "separators": (",", ":")}]),
)
def test_the_bridge_makes_the_rules_record_byte_for_byte_whatever_the_objects_text(
    obj: dict[str, object], form: dict[str, object]
) -> None:
    """The bridge's fast path (appending the thing to a compact object's text) never differs from
    writing the object whole, as the replay does: exponents, non-ASCII, DEL and escapes included."""
    payload = json.dumps(obj, **form).encode()  # type: ignore[arg-type]
    assert bridge.enrich("iotpm/pump-0000/telemetry", payload) == rule_record("iotpm/pump-0000/telemetry", payload)


def test_the_thing_comes_from_the_topic_as_the_rules_partition_key() -> None:
    assert (THING_FIELD, THING_SEGMENT) == (THING_KEY, bridge.THING_SEGMENT)
    key, data = rule_record("iotpm/pump-0000/telemetry", PAYLOADS[1])
    assert key == "pump-0000" and json.loads(data)["thing_name"] == "pump-0000"


def test_a_basic_ingest_topic_is_seen_without_its_prefix() -> None:
    """A message published through Basic Ingest is kept with its full topic; the rule saw it
    without ``$aws/rules/<rule>/``, so its thing is still the topic's second level."""
    key, data = rule_record("$aws/rules/iotpm_prod_telemetry/iotpm/pump-0000/telemetry", PAYLOADS[0])
    assert key == "pump-0000" and json.loads(data)["thing_name"] == "pump-0000"


def test_an_error_action_message_gives_back_the_original_payload() -> None:
    body = json.dumps({"topic": "iotpm/m/telemetry", "base64OriginalPayload": base64.b64encode(b"\x00raw").decode(),
                       "failures": [{"errorMessage": "Rate exceeded"}, "odd"]}).encode()  # fmt: skip
    msg = parse_error_message("errors/k.json", body)
    assert (msg.topic, msg.payload, msg.failures) == ("iotpm/m/telemetry", b"\x00raw", ("Rate exceeded",))


@pytest.mark.parametrize(
    "body",
    [b"{", b"[]", b'{"topic": "t"}', b'{"topic": "t", "base64OriginalPayload": "***"}',
     b'{"topic": "", "base64OriginalPayload": ""}', b'{"topic": 3, "base64OriginalPayload": ""}'],
)  # fmt: skip
def test_anything_else_is_unreadable(body: bytes) -> None:
    with pytest.raises(UnreadableMessageError, match=r"errors/k\.json"):
        parse_error_message("errors/k.json", body)


def test_put_records_calls_stay_within_kinesis_limits_in_order() -> None:
    records = [("p", b"x" * 100)] * 1200 + [("p", b"y" * (MAX_BYTES // 3))] * 4
    chunks = list(_chunks(list(range(len(records))), records))
    assert [i for c in chunks for i in c] == list(range(len(records)))
    assert all(len(c) <= MAX_RECORDS and sum(len(records[i][1]) + 1 for i in c) <= MAX_BYTES for c in chunks)
    assert [len(c) for c in chunks] == [500, 500, 202, 2]  # the third starts 200 small, takes 2 large
