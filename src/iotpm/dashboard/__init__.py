"""The machine-health dashboard: one static page (index.html) over the analytics API, no backend of its own.

The page calls only the API it was served by (paths on its own origin) and builds its
content as DOM nodes, so a value from the API is never parsed as markup. The headers
served with it say so to the browser too: a Content-Security-Policy that lets it connect
to its own origin only, run only the page's own inline script and style (by hash, so an
injected one would not run) and be framed by no one.
"""

from __future__ import annotations

import base64
import hashlib
import re
from functools import cache
from importlib import resources

_INLINE = {"script": re.compile(rb"<script>(.*?)</script>", re.S), "style": re.compile(rb"<style>(.*?)</style>", re.S)}


@cache
def page() -> bytes:
    """The dashboard's HTML (scripts and styles inline: one file to serve or upload)."""
    return resources.files("iotpm.dashboard").joinpath("index.html").read_bytes()


def _hashes(kind: str) -> str:
    blocks = _INLINE[kind].findall(page())
    if not blocks:
        raise ValueError(f"the dashboard page has no inline {kind}")
    return " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(b).digest()).decode()}'" for b in blocks)


@cache
def content_security_policy() -> str:
    """The page's CSP: its own origin for API calls, its own inline script and style by hash, no framing."""
    return "; ".join(
        [
            "default-src 'none'",
            f"script-src {_hashes('script')}",
            f"style-src {_hashes('style')}",
            "img-src data:",  # the page's empty favicon (data:,) and nothing else
            "connect-src 'self'",
            "base-uri 'none'",
            "form-action 'none'",  # the key form is handled by the script, never submitted
            "frame-ancestors 'none'",
        ]
    )


def headers() -> dict[str, str]:
    """Response headers for the page (API Gateway and the local server send the handler's headers as they are)."""
    return {
        "Cache-Control": "no-cache",
        "Content-Security-Policy": content_security_policy(),
        "X-Frame-Options": "DENY",  # frame-ancestors for browsers that predate it
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    }
