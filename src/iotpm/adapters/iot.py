"""Device certificates in AWS IoT Core: one key pair and certificate per thing, bound to it.

``provision`` creates an active certificate for each thing (AWS generates the key),
attaches the environment's device policy (the iot module's ``iot_policy_name``
output) and the thing as principal, and writes ``<thing>.pem`` / ``<thing>.key`` for
the simulator. A thing that already has a certificate file is left alone.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from iotpm.adapters.errors import aws_call

if TYPE_CHECKING:
    from mypy_boto3_iot.client import IoTClient


@dataclass(frozen=True, slots=True)
class Provisioned:
    """What happened to one thing."""

    thing: str
    certificate_arn: str | None  # None: its files existed, nothing was created


def provision(iot: IoTClient, things: Sequence[str], policy: str, out: Path) -> list[Provisioned]:
    """Certificates for ``things`` in ``out`` (created 0700; keys 0600)."""
    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    done = []
    for thing in things:
        cert, key = out / f"{thing}.pem", out / f"{thing}.key"
        if cert.exists() and key.exists():
            done.append(Provisioned(thing, None))
            continue
        with aws_call(f"DescribeThing {thing}"):
            iot.describe_thing(thingName=thing)  # the thing comes from Terraform: fail early if it does not exist
        with aws_call("CreateKeysAndCertificate"):
            made = iot.create_keys_and_certificate(setAsActive=True)
        arn = made["certificateArn"]
        with aws_call(f"AttachPolicy {policy}"):
            iot.attach_policy(policyName=policy, target=arn)
        with aws_call(f"AttachThingPrincipal {thing}"):
            # exclusive: the certificate can be attached to this thing only, so it cannot publish as another
            iot.attach_thing_principal(thingName=thing, principal=arn, thingPrincipalType="EXCLUSIVE_THING")
        _write_private(key, made["keyPair"]["PrivateKey"])
        cert.write_text(made["certificatePem"])
        done.append(Provisioned(thing, arn))
    return done


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` readable by its owner only: created 0600 (no moment readable by others), then renamed in."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as out:
        out.write(text)
    tmp.replace(path)
