"""`provision` binds each certificate to its one thing (AWS's exclusive thing principal)."""

from __future__ import annotations

from pathlib import Path

import boto3
from botocore.stub import Stubber

from iotpm.adapters.iot import provision


def test_the_certificate_is_attached_to_its_thing_exclusively(tmp_path: Path) -> None:
    iot = boto3.client("iot", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x")
    arn = "arn:aws:iot:eu-west-1:123456789012:cert/" + "a" * 64
    with Stubber(iot) as stub:  # the Stubber checks each request against the service model, then these params
        stub.add_response("describe_thing", {"thingName": "pump-1"}, {"thingName": "pump-1"})
        made = {"certificateArn": arn, "certificateId": "a" * 64, "certificatePem": "PEM",
                "keyPair": {"PublicKey": "pub", "PrivateKey": "key"}}  # fmt: skip
        stub.add_response("create_keys_and_certificate", made, {"setAsActive": True})
        stub.add_response("attach_policy", {}, {"policyName": "device", "target": arn})
        exclusive = {"thingName": "pump-1", "principal": arn, "thingPrincipalType": "EXCLUSIVE_THING"}
        stub.add_response("attach_thing_principal", {}, exclusive)
        done = provision(iot, ["pump-1"], "device", tmp_path)
        stub.assert_no_pending_responses()
    assert [p.certificate_arn for p in done] == [arn]
    assert (tmp_path / "pump-1.key").read_text() == "key"
