"""The twin's webhook receiver records SNS notifications by route."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from iotpm.local.webhook import WebhookReceiver


def post(url: str, body: object) -> int:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "text/plain; charset=UTF-8"})  # fmt: skip
    with urllib.request.urlopen(req, timeout=5) as resp:
        return int(resp.status)


def test_notifications_are_kept_per_route(tmp_path: Path) -> None:
    hooks = WebhookReceiver(tmp_path / "hooks.jsonl").start()
    try:
        note = {
            "Type": "Notification",
            "Subject": "[CRITICAL] pump-1 alarm raised",
            "Message": json.dumps({"device_id": "pump-1"}),
            "MessageAttributes": {"line": {"Type": "String", "Value": "line-1"}},
        }
        assert post(f"{hooks.url}/hooks/line-1-critical", note) == 200
        assert post(f"{hooks.url}/hooks/line-2", {"Type": "Notification", "Message": "plain text"}) == 200
        with urllib.request.urlopen(f"{hooks.url}/hooks/line-1-critical", timeout=5) as resp:
            (got,) = json.loads(resp.read())["items"]
        assert got["attributes"] == {"line": "line-1"} and got["message"] == {"device_id": "pump-1"}
        assert [d["route"] for d in hooks.deliveries()] == ["line-1-critical", "line-2"]
        assert hooks.deliveries("line-2")[0]["message"] == "plain text"
        with pytest.raises(urllib.error.HTTPError) as nowhere:
            post(f"{hooks.url}/elsewhere", note)
        assert nowhere.value.code == 404
    finally:
        hooks.stop()
