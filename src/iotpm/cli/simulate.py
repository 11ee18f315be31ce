"""``iotpm simulate``: a simulated fleet with injected faults, published to AWS IoT Core or the local broker."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from iotpm.cli.errors import fail, requires, stderr

console = Console(soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add ``simulate`` to the ``iotpm`` app."""
    app.command("simulate")(simulate_cmd)


@requires("simulate", "awscrt", "awsiot", "cryptography")
def simulate_cmd(
    endpoint: Annotated[str, typer.Option(help="MQTT host: the iot_endpoint output, or 127.0.0.1 for the twin")],
    certs: Annotated[Path, typer.Option(help="folder with <device>.pem and <device>.key per device")],
    ca: Annotated[Path, typer.Option(help="CA that signed the broker (AmazonRootCA1.pem for AWS)")],
    port: Annotated[int, typer.Option(help="8883 (or 443 with ALPN in AWS)")] = 8883,
    devices: Annotated[int, typer.Option(min=2)] = 20,
    rate: Annotated[float, typer.Option(min=0.1, help="readings per second per device")] = 1.0,
    duration: Annotated[float, typer.Option(min=1)] = 60.0,
    faults: Annotated[str, typer.Option(help="faults to inject, comma-separated")] = "bearing_wear,overheating",
    fault_at: Annotated[float, typer.Option()] = 30.0,
    restart_at: Annotated[
        float | None, typer.Option(min=0, help="seconds into the run when every device restarts (seq from 1 again)")
    ] = None,
    topic_prefix: Annotated[str, typer.Option()] = "iotpm",
    rule: Annotated[
        str | None,
        typer.Option(
            help="publish through IoT Basic Ingest to this topic rule: the telemetry_rule_name Terraform output "
            "(the device policy allows only that topic; required unless the endpoint is on this machine); "
            "empty: the plain topic"
        ),
    ] = None,
    gateway: Annotated[
        str | None,
        typer.Option(
            help="the devices sit behind this gateway thing: it alone connects (its certificate in --certs) "
            "and publishes every device's reading of a tick in one message on its own topic"
        ),
    ] = None,
    truth: Annotated[Path, typer.Option(help="where to write the ground truth")] = Path("ground_truth.json"),
) -> None:
    """Publish a simulated fleet with injected faults (to AWS IoT Core or the local broker)."""
    from iotpm.local.broker import Broker
    from iotpm.local.certs import Identity
    from iotpm.local.run import simulate
    from iotpm.local.twin import fault_list
    from iotpm.simulator.fleet import Fleet, ground_truth

    try:
        rule = basic_ingest_rule(endpoint, rule, twin_rule(port))
    except ValueError as exc:
        fail(str(exc))
    fleet = Fleet(devices, seed=7)
    try:
        kinds = fault_list(faults)
    except ValueError as exc:
        fail(str(exc))
    injected = fleet.scenario(kinds, fault_at)
    missing = [d for d in ([gateway] if gateway else fleet.ids) if not (certs / f"{d}.pem").exists()]
    if missing:
        fail(f"no certificate for {', '.join(missing[:5])} in {certs}")

    from rich.live import Live

    broker = Broker(endpoint, port, ca, topic_prefix, rule or None)
    with Live(console=stderr, refresh_per_second=4) as live:

        def show(sent: int, acked: int, failed: int) -> None:
            live.update(f"sent {sent:,}  acknowledged {acked:,}  failed {failed:,}")

        identity = lambda d: Identity(certs / f"{d}.pem", certs / f"{d}.key")  # noqa: E731
        run = simulate(fleet, identity, broker, duration, rate, show, restart_at_s=restart_at, gateway=gateway)
    truth.write_text(json.dumps(ground_truth(injected, run.start_ms), indent=2))
    console.print(f"sent {run.sent:,}, acknowledged {run.acked:,}, failed {run.failed:,}; ground truth in {truth}")


def basic_ingest_rule(endpoint: str, rule: str | None, twin: str | None = None) -> str | None:
    """The topic rule to publish through (None: the plain topic).

    Without ``--rule``, a broker on this machine takes the running twin's rule (``twin``,
    see :func:`twin_rule`: its ACL allows the Basic Ingest topic only, as AWS) or, for a broker
    of your own, the plain topic; any other endpoint is refused (ValueError): AWS IoT's device
    policy allows a thing only its Basic Ingest topic and closes the connection of a device
    that publishes elsewhere. ``--rule ""`` asks for the plain topic explicitly.
    """
    if rule is not None:
        return rule or None
    if _on_this_machine(endpoint):
        return twin
    raise ValueError(
        f"--rule is needed for {endpoint}: devices publish through IoT Basic Ingest, the only topic the "
        "device policy allows. Pass the telemetry_rule_name Terraform output: "
        '--rule "$(terraform -chdir=terraform/environments/<env> output -raw telemetry_rule_name)"'
    )


def _on_this_machine(endpoint: str) -> bool:
    import ipaddress

    host = endpoint.strip().removeprefix("[").removesuffix("]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def twin_rule(port: int) -> str | None:
    """The telemetry rule of the local twin whose broker listens on ``port`` (None: no twin there)."""
    path = Path(os.environ.get("IOTPM_HOME", ".iotpm")) / "local" / "services.json"
    try:
        broker = json.loads(path.read_text())["broker"]
        return str(broker["rule_name"]) if int(broker["port"]) == port and broker.get("rule_name") else None
    except (OSError, ValueError, KeyError, TypeError):  # no twin, or a record of another release
        return None
