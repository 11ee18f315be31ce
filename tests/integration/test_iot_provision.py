"""`iotpm devices provision` against the emulator's IoT control plane."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from cryptography import x509

from iotpm.adapters.iot import provision
from iotpm.service.errors import StoreError

from .aws import client


def test_each_thing_gets_its_own_certificate_bound_to_it_and_the_policy(endpoint: str, tmp_path: Path) -> None:
    iot = client("iot", endpoint)
    tag = uuid.uuid4().hex[:6]
    things, policy = [f"pump-{tag}-1", f"pump-{tag}-2"], f"device-{tag}"
    for t in things:
        iot.create_thing(thingName=t)
    iot.create_policy(policyName=policy, policyDocument='{"Version":"2012-10-17","Statement":[]}')

    done = provision(iot, things, policy, tmp_path / "certs")

    arns = [p.certificate_arn for p in done]
    assert all(arns) and len(set(arns)) == 2
    for thing, arn in zip(things, arns, strict=True):
        assert iot.list_thing_principals(thingName=thing)["principals"] == [arn]
        assert [p["policyName"] for p in iot.list_attached_policies(target=arn)["policies"]] == [policy]
        x509.load_pem_x509_certificate((tmp_path / "certs" / f"{thing}.pem").read_bytes())
        assert (tmp_path / "certs" / f"{thing}.key").stat().st_mode & 0o777 == 0o600
    again = provision(iot, things, policy, tmp_path / "certs")
    assert [p.certificate_arn for p in again] == [None, None]  # existing files are kept, nothing new is made


def test_unknown_thing_is_an_error_before_anything_is_created(endpoint: str, tmp_path: Path) -> None:
    iot = client("iot", endpoint)
    with pytest.raises(StoreError, match="DescribeThing"):
        provision(iot, [f"ghost-{uuid.uuid4().hex[:6]}"], "any", tmp_path)
    assert not list(tmp_path.glob("*.pem"))
