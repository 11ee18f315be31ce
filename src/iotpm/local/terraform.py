"""Running ``terraform`` on the local environment root from Python, with progress.

Uses the same provider setup as the scripts (scripts/lib/terraform.sh: the registry,
or a local mirror when it is unreachable) and keeps the state and the ``.terraform``
folder in the twin's state folder, so the checkout stays clean.

The state describes what one emulator holds, and the emulator keeps it in memory: when
that emulator is gone (``local down``, a kill, a reboot) so are the resources, and a
state kept past it makes the next apply fail refreshing them. So :class:`TerraformState`
records which emulator the state belongs to (its address, and the process iotpm started:
pid, start time and boot) and tells when it is stale; a stale state is discarded and the
fresh emulator gets a fresh apply.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from iotpm.emulator import pidfile
from iotpm.emulator.control import private_dir


def repo_root(start: Path | None = None) -> Path:
    """The checkout that holds terraform/environments/local (the twin applies it)."""
    for folder in [start or Path.cwd(), *(start or Path.cwd()).parents, *Path(__file__).resolve().parents]:
        if (folder / "terraform" / "environments" / "local").is_dir():
            return folder
    raise RuntimeError("run iotpm local from the iotpm checkout (terraform/environments/local is needed)")


class TerraformState:
    """The twin's Terraform state file and the emulator whose resources it describes."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / "terraform.tfstate"
        self.owner_path = folder / "emulator.json"

    def read(self) -> dict[str, Any] | None:
        """The state as JSON; None when there is none, and {} when it is unreadable."""
        try:
            text = self.path.read_text()
        except OSError:
            return None
        try:
            value = json.loads(text)
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}

    def outputs(self) -> dict[str, Any]:
        state = self.read() or {}
        return {k: v.get("value") for k, v in (state.get("outputs") or {}).items() if isinstance(v, dict)}

    def owner(self) -> dict[str, Any] | None:
        """The emulator the state belongs to, as :meth:`claim` recorded it."""
        try:
            value = json.loads(self.owner_path.read_text())
        except (OSError, ValueError):
            return None
        return value if isinstance(value, dict) else None

    def claim(self, url: str, process: pidfile.Recorded | None) -> None:
        """Record that the state (from now on) describes the emulator at ``url`` (``process``: iotpm started it)."""
        owner: dict[str, Any] = {"url": url, "claimed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        if process is not None:
            owner.update(pid=process.pid, start=process.start, boot=process.boot)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.owner_path.write_text(json.dumps(owner, indent=2))

    def stale(self, url: str | None = None) -> str | None:
        """Why the state cannot describe what the emulator holds now; None when it may.

        Decided from what was recorded: the emulator process iotpm started for it no longer
        runs, or ``url`` (the emulator about to be used) is another one. A state with no
        process recorded (an emulator iotpm did not start) is not judged here: the caller
        asks the emulator (:meth:`Twin._state_matches`).
        """
        state = self.read()
        if state is None:
            return None
        if not state:
            return "its file is unreadable (an apply was interrupted)"
        if not state.get("resources"):
            return None
        owner = self.owner()
        if owner is None:
            return "it does not name the emulator that holds its resources (written by an older iotpm)"
        if url is not None and owner.get("url") != url:
            return f"it describes the emulator at {owner.get('url')}, not {url}"
        if owner.get("pid") is None:
            return None
        rec = pidfile.Recorded(int(owner["pid"]), owner.get("start"), owner.get("boot"))
        if not pidfile.running(rec):
            return (
                f"its emulator (pid {rec.pid}, from {owner.get('claimed_at', 'an earlier run')}) no longer runs, "
                "and its resources went with it (stopped, killed, or the machine restarted)"
            )
        return None

    def discard(self) -> None:
        """Forget the state (the provider plugins in .terraform stay: no new init download)."""
        for name in ("terraform.tfstate", "terraform.tfstate.backup", ".terraform.tfstate.lock.info"):
            (self.folder / name).unlink(missing_ok=True)
        self.owner_path.unlink(missing_ok=True)


class LocalTerraform:
    """``init``/``apply``/``output``/``destroy`` of terraform/environments/local against an emulator."""

    def __init__(self, root: Path, state: Path, endpoint: str) -> None:
        if shutil.which("terraform") is None:
            raise RuntimeError("terraform is not installed: https://developer.hashicorp.com/terraform/install")
        self.dir = root / "terraform" / "environments" / "local"
        self.state, self.endpoint = state, endpoint
        private_dir(state)  # the state holds the API key: 0700 wherever the caller puts it
        self.env = {**os.environ, "TF_DATA_DIR": str(state / ".terraform"), "TF_IN_AUTOMATION": "1"}
        self.env.update(_cli_config(root))

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        cmd = ["terraform", f"-chdir={self.dir}", *args]
        run = subprocess.run(cmd, env=self.env, capture_output=True, text=True, check=False)
        if run.returncode != 0:
            raise RuntimeError(f"terraform {args[0]} failed:\n{run.stdout[-3000:]}{run.stderr[-3000:]}")
        return run

    def init(self) -> None:
        self._run("init", "-input=false", f"-backend-config=path={self.state / 'terraform.tfstate'}", "-reconfigure")

    def apply(self, progress: Callable[[int, int, str], None], variables: dict[str, str] | None = None) -> None:
        """Apply, calling ``progress(done, total, resource)`` as resources complete."""
        cmd = ["terraform", f"-chdir={self.dir}", "apply", "-input=false", "-auto-approve", "-json"]
        cmd += ["-var", f"emulator_endpoint={self.endpoint}"]
        for name, value in (variables or {}).items():
            cmd += ["-var", f"{name}={value}"]
        total = done = 0
        errors: list[str] = []
        with subprocess.Popen(cmd, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
            assert proc.stdout is not None
            for line in proc.stdout:
                msg = _json(line)
                kind = msg.get("type")
                if kind == "change_summary":
                    c = msg.get("changes", {})
                    total = int(c.get("add", 0)) + int(c.get("change", 0)) + int(c.get("remove", 0)) or total
                elif kind == "planned_change":
                    total += 1
                elif kind == "apply_complete":
                    done += 1
                    progress(done, max(total, done), msg.get("hook", {}).get("resource", {}).get("addr", ""))
                elif kind == "diagnostic" and msg.get("@level") == "error":
                    errors.append(f"{msg.get('@message')}: {msg.get('diagnostic', {}).get('detail', '')}")
        if proc.returncode != 0:
            raise RuntimeError("terraform apply failed:\n" + "\n".join(errors[-5:]))

    def outputs(self) -> dict[str, Any]:
        return {k: v["value"] for k, v in json.loads(self._run("output", "-json").stdout).items()}


def _json(line: str) -> dict[str, Any]:
    try:
        value = json.loads(line)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _cli_config(root: Path) -> dict[str, str]:
    """TF_CLI_CONFIG_FILE as scripts/lib/terraform.sh sets it (a provider mirror when offline)."""
    lib = root / "scripts" / "lib" / "terraform.sh"
    script = f'source "{lib}" && terraform_offline_setup >&2 && echo "${{TF_CLI_CONFIG_FILE:-}}"'
    run = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=False)
    if run.returncode != 0:
        raise RuntimeError(run.stderr.strip() or "terraform provider setup failed")
    path = run.stdout.strip()
    return {"TF_CLI_CONFIG_FILE": path} if path and Path(path).exists() else {}


def function_environment(lambda_client: Any, function_name: str) -> dict[str, str]:
    """The environment variables Terraform set on a function, read back from the (emulated) Lambda API.

    The local twin and the tests run the handlers with exactly these, so a variable the
    code needs and Terraform does not set (or sets under another name) fails locally.
    """
    config = lambda_client.get_function_configuration(FunctionName=function_name)
    return {str(k): str(v) for k, v in (config.get("Environment") or {}).get("Variables", {}).items()}


def handler_environment(lambda_client: Any, function_name: str, region: str) -> dict[str, str]:
    """What the Lambda runtime adds to a function's own variables: its region (AWS_REGION)."""
    return {**function_environment(lambda_client, function_name), "AWS_REGION": region, "AWS_DEFAULT_REGION": region}
