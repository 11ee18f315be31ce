"""Where the analytics commands find the running local twin: its emulator, archive bucket and API."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from iotpm.emulator import control


class TwinNotRunningError(RuntimeError):
    """``iotpm local up`` has not run (or ``down`` has): there is no twin to read."""


@dataclass(frozen=True, slots=True)
class TwinEndpoints:
    """What a running twin recorded in its state folder (``$IOTPM_HOME/local/twin.json``)."""

    home: Path
    endpoint: str
    bucket: str
    api_url: str
    api_key: str
    region: str = "eu-west-1"  # the local environment's (terraform/environments/local)

    @classmethod
    def load(cls, home: Path | None = None) -> TwinEndpoints:
        folder = (home or control.state_dir()).resolve() / "local"
        try:
            record: dict[str, Any] = json.loads((folder / "twin.json").read_text())
            outputs = record["outputs"]
            return cls(folder, f"http://127.0.0.1:{record['emulator_port']}", outputs["archive_bucket"],
                       record["api_url"], record["api_key"], outputs.get("region", "eu-west-1"))  # fmt: skip
        except (OSError, ValueError, KeyError) as exc:
            raise TwinNotRunningError("no local twin is running: start one with `iotpm local up`") from exc

    def s3(self) -> Any:
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name=self.region,
                            aws_access_key_id="test", aws_secret_access_key="test")  # fmt: skip

    def sync_archive(self, dest: Path | None = None) -> tuple[Path, int]:
        """Copy the twin's archive into ``dest`` (default: its state folder's ``archive/``).

        Returns the folder and how many objects were fetched.
        """
        from iotpm.adapters.s3 import S3Archive

        folder = dest or self.home / "archive"
        return folder, S3Archive(self.s3(), self.bucket).download(folder, ("raw/", "quarantine/", "compacted/"))
