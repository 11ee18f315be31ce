"""The local twin's webhook receiver: where SNS delivers routed alerts (the stand-in for chat tools).

``POST /hooks/<route>`` takes an SNS HTTP notification and appends it, with the
route's name, to a JSON Lines file in the twin's state folder; ``GET /hooks/<route>``
answers what that route received (``GET /hooks`` everything). Started in the twin's
services process on the port ``iotpm local up`` gave Terraform as ``local_webhook_url``.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

PREFIX = "/hooks"


def delivery(route: str, notification: dict[str, Any]) -> dict[str, Any]:
    """What the receiver records of one SNS notification."""
    attrs = {k: v.get("Value") for k, v in (notification.get("MessageAttributes") or {}).items()}
    message = notification.get("Message", "")
    try:
        body: Any = json.loads(message)
    except (TypeError, ValueError):
        body = message
    return {
        "route": route, "received_ms": int(time.time() * 1000), "type": notification.get("Type"),
        "subject": notification.get("Subject"), "attributes": attrs, "message": body,
    }  # fmt: skip


class WebhookReceiver:
    """A threaded HTTP server on 127.0.0.1 recording what each route receives."""

    def __init__(self, log_path: Path, port: int = 0, host: str = "127.0.0.1") -> None:
        self.log_path = log_path
        self._lock = threading.Lock()
        self.received = 0
        self.httpd = ThreadingHTTPServer((host, port), self._request_class())
        self.httpd.daemon_threads = True

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> WebhookReceiver:
        threading.Thread(target=self.httpd.serve_forever, name="iotpm-webhooks", daemon=True).start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def record(self, route: str, notification: dict[str, Any]) -> None:
        line = json.dumps(delivery(route, notification)) + "\n"
        with self._lock, self.log_path.open("a") as f:
            f.write(line)
            self.received += 1

    def deliveries(self, route: str | None = None) -> list[dict[str, Any]]:
        try:
            lines = self.log_path.read_text().splitlines()
        except OSError:
            return []
        items = [json.loads(x) for x in lines if x.strip()]
        return [i for i in items if route is None or i["route"] == route]

    def _request_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Request(BaseHTTPRequestHandler):
            def _route(self) -> str | None:
                path = self.path.split("?")[0].rstrip("/")
                if path == PREFIX:
                    return ""
                return path[len(PREFIX) + 1 :] if path.startswith(PREFIX + "/") else None

            def _send(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                route = self._route()
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if not route:
                    return self._send(404, {"error": "post to /hooks/<route>"})
                try:
                    notification = json.loads(raw or b"{}")
                except ValueError:
                    return self._send(400, {"error": "not JSON"})
                server.record(route, notification if isinstance(notification, dict) else {"Message": notification})
                return self._send(200, {"ok": True})

            def do_GET(self) -> None:
                route = self._route()
                if route is None:
                    return self._send(404, {"error": "GET /hooks or /hooks/<route>"})
                return self._send(200, {"items": server.deliveries(route or None)})

            def log_message(self, format: str, *args: Any) -> None:
                return

        return Request
