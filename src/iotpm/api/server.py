"""The local API Gateway: HTTP requests in, API Gateway proxy events to the same handler, responses out.

It checks ``x-api-key`` on reads as a usage plan would (403 without the right key).
Writes (every method but GET, HEAD and OPTIONS) are IAM-authorized in the deployed API;
here they need the twin's operator credential instead, HTTP Basic ``operator:<key>``
(``curl -u operator:$KEY``), and the event carries it as the caller's principal, where
API Gateway puts the IAM principal. A read key cannot write. Otherwise it adds nothing:
what curl sees locally is what the deployed API answers.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from iotpm.api.models import ErrorBody, ErrorDetail

Handler = Callable[[Mapping[str, Any], Any], Mapping[str, Any]]
STAGE = "v1"
DASHBOARD = "/dashboard"  # the machine-health page (terraform/modules/api/dashboard.tf: no key)
READS = frozenset({"GET", "HEAD", "OPTIONS"})
#: the principal the twin's operator credential stands for (an IAM user ARN in the deployed API)
LOCAL_OPERATOR = "arn:aws:iam::000000000000:user/iotpm-local-operator"


def proxy_event(
    method: str,
    target: str,
    headers: Mapping[str, str],
    source_ip: str,
    body: str | None = None,
    principal: str | None = None,
) -> dict[str, Any]:
    """The REST API proxy event API Gateway would send for this request (``principal``: the
    IAM caller, as AWS_IAM authorization leaves it in the request context)."""
    url = urlsplit(target)
    path = unquote(url.path) or "/"  # API Gateway hands the decoded path to the integration
    multi = parse_qs(url.query, keep_blank_values=True)
    return {
        "resource": "/{proxy+}",
        "path": path,
        "httpMethod": method,
        "headers": dict(headers),
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": {k: v[-1] for k, v in multi.items()} or None,
        "multiValueQueryStringParameters": multi or None,
        "pathParameters": {"proxy": path.lstrip("/")},
        "stageVariables": None,
        "requestContext": {
            "stage": STAGE,
            "requestId": str(uuid.uuid4()),
            "httpMethod": method,
            "path": f"/{STAGE}{path}",
            "identity": {"sourceIp": source_ip, "userArn": principal, "caller": principal},
            "requestTimeEpoch": int(time.time() * 1000),
        },
        "body": body,
        "isBase64Encoded": False,
    }


class ApiServer:
    """A threaded HTTP server on 127.0.0.1 in front of an API handler."""

    def __init__(
        self, handler: Handler, api_key: str, port: int = 0, host: str = "127.0.0.1", operator_key: str = ""
    ) -> None:
        """``operator_key``: the credential writes need (empty: nobody may write)."""
        self.handler, self.api_key, self.operator_key = handler, api_key, operator_key
        self.httpd = ThreadingHTTPServer((host, port), self._request_class())
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None
        #: one request at a time through the handler, as a Lambda execution environment runs it: the
        #: handler's resolver (Powertools) keeps the request's route in state shared by its requests,
        #: and two at once raised KeyError '_route' (a 500 the dashboard's parallel reads met under load)
        self._one_at_a_time = threading.Lock()

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> ApiServer:
        """Serve in a background thread."""
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="iotpm-api", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self.httpd.serve_forever()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def respond(
        self, method: str, target: str, headers: Mapping[str, str], source_ip: str, body: str | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        """Status, headers and body for one request."""
        out: Mapping[str, Any]
        if method not in READS:
            if not self._operator(headers):
                out = {"statusCode": 403, "body": _NO_WRITE, "headers": {"Content-Type": "application/json"}}
            else:
                with self._one_at_a_time:
                    out = self.handler(proxy_event(method, target, headers, source_ip, body, LOCAL_OPERATOR), None)
            return int(out["statusCode"]), _headers(out), str(out.get("body") or "").encode()
        given = _header(headers, "x-api-key")
        keyless = method == "GET" and urlsplit(target).path == DASHBOARD  # as API Gateway's keyless GET /dashboard
        if not keyless and not hmac.compare_digest(given.encode(), self.api_key.encode()):
            out = {"statusCode": 403, "body": _FORBIDDEN, "headers": {"Content-Type": "application/json"}}
        else:
            with self._one_at_a_time:
                out = self.handler(proxy_event(method, target, headers, source_ip), None)
        return int(out["statusCode"]), _headers(out), str(out.get("body") or "").encode()

    def _operator(self, headers: Mapping[str, str]) -> bool:
        """Whether the request carries the operator credential (HTTP Basic ``operator:<key>``)."""
        scheme, _, token = _header(headers, "authorization").partition(" ")
        if scheme.lower() != "basic" or not self.operator_key:
            return False
        try:
            user, _, key = base64.b64decode(token, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return user == "operator" and hmac.compare_digest(key.encode(), self.operator_key.encode())

    def _request_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Request(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def __getattr__(self, name: str) -> Any:
                # Every method goes to the handler, as API Gateway's ANY proxy does (http.server would say 501).
                if name.startswith("do_"):
                    return self._answer
                raise AttributeError(name)

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(min(length, 1 << 20)).decode("utf-8", "replace") if length else None
                status, headers, payload = server.respond(
                    self.command, self.path, dict(self.headers.items()), self.client_address[0], body
                )
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                return  # access logs would swamp the local twin's console

        return Request


_FORBIDDEN = ErrorBody(
    error=ErrorDetail(status=403, code="forbidden", message="missing or wrong x-api-key")
).model_dump_json()
_NO_WRITE = ErrorBody(
    error=ErrorDetail(status=403, code="forbidden", message="writes need the operator credential (-u operator:KEY)")
).model_dump_json()


def _header(headers: Mapping[str, str], name: str) -> str:
    return next((v for k, v in headers.items() if k.lower() == name), "")


def _headers(out: Mapping[str, Any]) -> dict[str, str]:
    headers = {str(k): str(v) for k, v in (out.get("headers") or {}).items()}
    for k, values in (out.get("multiValueHeaders") or {}).items():
        headers[str(k)] = ", ".join(str(v) for v in values)
    return headers
