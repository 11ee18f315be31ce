"""Run moto's server with the compatibility fixes the pipeline and Terraform need.

Started by ``iotpm emulator start`` as ``python -m iotpm.emulator.server``. The fixes
(gaps found by running the pipeline and ``terraform apply`` against stock moto):

- Timestream endpoint discovery returns the emulator's own address (botocore and the
  Terraform provider dial whatever DescribeEndpoints returns);
- AWS-managed IAM policies are loaded (roles attach AWSLambdaVPCAccessExecutionRole);
- Lambda never executes code (there is no Docker): event source mappings and
  invokes must not try to start containers; the local twin's poller calls the
  handler in-process instead.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any


def apply_fixes(public_url: str) -> None:
    """Patch moto in this process before the server starts."""
    from moto.core.config import default_user_config
    from moto.timestreamwrite.responses import TimestreamWriteResponse

    default_user_config["lambda"]["use_docker"] = False

    def describe_endpoints(self: Any) -> str:
        return json.dumps({"Endpoints": [{"Address": public_url, "CachePeriodInMinutes": 1440}]})

    TimestreamWriteResponse.describe_endpoints = describe_endpoints  # type: ignore[method-assign]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="moto server with iotpm's compatibility fixes")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4566)
    args = parser.parse_args(argv)
    os.environ.setdefault("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
    apply_fixes(f"http://{args.host}:{args.port}")
    from moto.server import main as moto_main

    moto_main(["-H", args.host, "-p", str(args.port)])


if __name__ == "__main__":
    main()
