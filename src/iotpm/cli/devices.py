"""``iotpm devices provision|import``: certificates for things, and the device registry from a plant's list.

``provision`` creates a certificate per thing in AWS IoT Core (files for ``iotpm simulate``).
``import registry.csv`` fills the device registry from a plant's list of devices.

One row a device: ``device_id,site,line,device_type`` and optionally ``gateway`` (the
gateway thing it publishes through) and ``overrides`` (its own limits as JSON,
``{"temperature": {"high": 95}}``). Every row is checked before anything is written: a
file with an invalid row writes nothing. A row's gateway must be another row or a
registered device whose device_type is ``gateway`` (the file's gateways are written
first). A row equal to the device's registration is not written again; each one that is
leaves an audit entry naming the caller's IAM principal.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from pydantic import ValidationError
from rich.console import Console

from iotpm.cli.errors import FAILED, fail, requires

if TYPE_CHECKING:
    from iotpm.operator.ports import Registration

console = Console(soft_wrap=True)
REQUIRED = ("device_id", "site", "line", "device_type")


def register(app: typer.Typer) -> None:
    """Add the ``devices`` group (``import``, ``provision``) to the ``iotpm`` app."""
    devices = typer.Typer(help="Devices in AWS IoT Core.", no_args_is_help=True)
    devices.command("import")(import_)
    devices.command("provision")(provision)
    app.add_typer(devices, name="devices")


def read_registrations(path: Path) -> list[Registration]:
    """Every row of the CSV as a registration; ValueError naming each bad row (nothing is half read)."""
    from iotpm.api.operator_models import RegistrationIn
    from iotpm.models.readings import DEVICE_ID_PATTERN
    from iotpm.operator.ports import Registration

    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: the header lacks {', '.join(missing)}")
        rows = list(reader)
    out, problems, seen, lines = [], [], set(), {}
    for line, row in enumerate(rows, start=2):
        device_id = (row.get("device_id") or "").strip()
        try:
            if not re.match(DEVICE_ID_PATTERN, device_id):
                raise ValueError(f"device_id {device_id!r} is not a thing name")
            if device_id in seen:
                raise ValueError(f"device {device_id!r} is listed twice")
            overrides = json.loads(row["overrides"]) if (row.get("overrides") or "").strip() else {}
            body = RegistrationIn.model_validate(
                {k: (row.get(k) or "").strip() for k in REQUIRED[1:]}
                | {"gateway": (row.get("gateway") or "").strip() or None, "overrides": overrides}
            )
        except ValidationError as exc:
            problems.append(
                f"line {line}: " + "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            )
            continue
        except ValueError as exc:  # json's errors too
            problems.append(f"line {line}: {exc}")
            continue
        seen.add(device_id)
        lines[device_id] = line
        limits = {k: v.model_dump() for k, v in body.overrides.items()}
        out.append(Registration(device_id, body.site, body.line, body.device_type, body.gateway, limits))
    problems += [f"line {lines[d]}: {p}" for d, p in _gateway_problems(out).items()]
    if problems:
        raise ValueError("\n".join(problems))
    return out


def _gateway_problems(regs: list[Registration]) -> dict[str, str]:
    """The rows whose gateway the file alone refuses: the device itself, or a row of it that is not
    a gateway (a gateway the file does not list is checked against the registry on import)."""
    from iotpm.operator.service import gateway_problem

    listed = {r.device_id: r for r in regs}
    return {
        r.device_id: p
        for r in regs
        if r.gateway is not None and (r.gateway == r.device_id or r.gateway in listed)
        if (p := gateway_problem(r, listed.get(r.gateway))) is not None
    }


@requires("devices import", "boto3")
def import_(
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="registry.csv")],
    registry_table: Annotated[str, typer.Option(envvar="IOTPM_REGISTRY_TABLE", help="terraform output")],
    config_table: Annotated[str, typer.Option(envvar="IOTPM_CONFIG_TABLE", help="terraform output")],
    audit_table: Annotated[str, typer.Option(envvar="IOTPM_AUDIT_TABLE", help="terraform output")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Check the file, write nothing.")] = False,
    region: Annotated[str | None, typer.Option(help="AWS region (default: the AWS configuration's).")] = None,
    endpoint_url: Annotated[
        str | None, typer.Option(help="AWS endpoint, e.g. the local emulator (default: AWS_ENDPOINT_URL or AWS).")
    ] = None,
) -> None:
    """Register every device the CSV lists (exit 2 and nothing written if a row is invalid)."""
    from iotpm.adapters import registry
    from iotpm.operator.service import InvalidRegistrationsError, Operator
    from iotpm.service.errors import StoreError

    try:
        regs = read_registrations(path)
    except ValueError as exc:
        fail(f"nothing written:\n{exc}")
    if dry_run:
        console.print(f"{len(regs)} devices in {path}: valid (nothing written)")
        return
    names = registry.OperatorTables(registry_table, config_table, audit_table)
    try:
        reg, docs, audit, who = registry.connect(names, region, endpoint_url)
        changed = Operator(reg, docs, audit, lambda _: None).import_registrations(regs, who)
    except InvalidRegistrationsError as exc:  # a gateway the registry refuses
        rows = {r.device_id: n for n, r in enumerate(regs, start=2)}  # every row was read: line n is regs[n-2]
        fail("nothing written:\n" + "\n".join(f"line {rows[d]}: {p}" for d, p in exc.problems.items()))
    except StoreError as exc:
        fail(str(exc), FAILED)
    console.print(f"registered {changed} of {len(regs)} devices ({len(regs) - changed} unchanged) as {who}")


@requires("devices provision", "boto3")
def provision(
    things: Annotated[str, typer.Option(help="thing names, comma-separated (terraform output: the things variable)")],
    policy: Annotated[str, typer.Option(help="the iot_policy_name output of the environment")],
    out: Annotated[Path, typer.Option(help="folder for <thing>.pem and <thing>.key")] = Path("certs"),
) -> None:
    """Create a certificate per thing, attach the device policy and the thing (files for `iotpm simulate`)."""
    import boto3

    from iotpm.adapters import iot
    from iotpm.service.errors import StoreError

    names = [t.strip() for t in things.split(",") if t.strip()]
    try:
        done = iot.provision(boto3.client("iot"), names, policy, out)
    except StoreError as exc:
        fail(str(exc), FAILED)
    for p in done:
        console.print(f"{p.thing}: " + (p.certificate_arn or "certificate already in " + str(out)))
