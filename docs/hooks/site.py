"""mkdocs hooks: the pages the site makes from the repository at build time, so none can go stale.

- ``api-reference.md``: every route and schema of ``src/iotpm/api/openapi.json``, the contract
  the API's routes generate (``iotpm api openapi``), rendered as Markdown tables;
- ``benchmarks.md``: ``benchmarks/README.md``, how each figure was reached;
- ``figures/``: the images under ``benchmarks/figures`` that the pages show.

A page links to the repository's own file (``../benchmarks/figures/report.png``,
``../benchmarks/README.md``, ``../src/iotpm/api/openapi.json``), so the link also works where the
Markdown is read in the repository; ``on_page_markdown`` points it at the site's copy.
"""

from __future__ import annotations

import json
import posixpath
import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
OPENAPI = ROOT / "src" / "iotpm" / "api" / "openapi.json"
BENCHMARKS = ROOT / "benchmarks"
# repository file (relative to the root) -> where the site carries it (relative to docs/)
CARRIED = {"src/iotpm/api/openapi.json": "api-reference.md", "benchmarks/README.md": "benchmarks.md"}
FIGURES = "benchmarks/figures/"
METHODS = ("get", "put", "post", "patch", "delete")


def _cell(text: object) -> str:
    """Text safe inside a Markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ").strip()


def _anchor(name: str) -> str:
    """The heading id Python-Markdown's toc gives a schema's heading (its name, lower case)."""
    return re.sub(r"[^\w-]", "", name.lower())


def _type(schema: dict[str, Any]) -> str:
    """A schema as a short phrase: a link for a named schema, 'X or null' for an optional one."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return f"[{name}](#{_anchor(name)})"
    if "anyOf" in schema:
        return " or ".join(_type(s) for s in schema["anyOf"])
    if "enum" in schema:
        return "one of " + ", ".join(f"`{v}`" for v in schema["enum"])
    kind = schema.get("type", "any")
    if kind == "array":
        return f"array of {_type(schema.get('items', {}))}"
    if kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        return f"object of {_type(schema['additionalProperties'])}"
    return f"{kind} ({schema['format']})" if "format" in schema else str(kind)


def _limits(schema: dict[str, Any]) -> str:
    """Default and bounds, from the schema or the non-null branch of an optional one."""
    parts = [f"default `{json.dumps(schema['default'])}`"] if "default" in schema else []
    for branch in [schema, *schema.get("anyOf", [])]:
        for key, word in (("minimum", "≥"), ("maximum", "≤"), ("maxLength", "length ≤")):
            if key in branch:
                value = branch[key]
                parts.append(f"{word} {int(value) if float(value).is_integer() else value}")
        if "pattern" in branch:
            parts.append(f"`{branch['pattern']}`")
    return "; ".join(parts)


def _body_schema(part: dict[str, Any]) -> str:
    content = part.get("content", {})
    return _type(content["application/json"]["schema"]) if "application/json" in content else "–"


def _operation(path: str, method: str, op: dict[str, Any], default_security: list[Any]) -> list[str]:
    security = ", ".join(name for item in op.get("security", default_security) for name in item) or "none"
    lines = [f"## {method.upper()} `{path}`", "", f"{op.get('summary', '')}".strip(), ""]
    if op.get("description"):
        lines += [op["description"].strip(), ""]
    lines += [f"Credentials: {security}.", ""]
    params = op.get("parameters", [])
    if params:
        lines += ["| parameter | in | required | type | limits | description |", "|---|---|---|---|---|---|"]
        for p in params:
            schema = p.get("schema", {})
            lines.append(
                f"| `{p['name']}` | {p['in']} | {'yes' if p.get('required') else 'no'} | {_cell(_type(schema))} "
                f"| {_cell(_limits(schema))} | {_cell(p.get('description', schema.get('description', '')))} |"
            )
        lines.append("")
    if "requestBody" in op:
        lines += [f"Body: {_body_schema(op['requestBody'])}.", ""]
    lines += ["| status | meaning | body |", "|---|---|---|"]
    for status, response in op.get("responses", {}).items():
        lines.append(f"| {status} | {_cell(response.get('description', ''))} | {_cell(_body_schema(response))} |")
    return [*lines, ""]


def _schema(name: str, schema: dict[str, Any]) -> list[str]:
    lines = [f"### {name}", ""]
    if schema.get("description"):
        lines += [schema["description"].strip(), ""]
    props = schema.get("properties", {})
    if not props:
        return [*lines, f"Type: {_type(schema)}.", ""]
    required = set(schema.get("required", []))
    lines += ["| field | type | required | limits | description |", "|---|---|---|---|---|"]
    for field, prop in props.items():
        lines.append(
            f"| `{field}` | {_cell(_type(prop))} | {'yes' if field in required else 'no'} "
            f"| {_cell(_limits(prop))} | {_cell(prop.get('description', ''))} |"
        )
    return [*lines, ""]


def render_openapi(spec: dict[str, Any]) -> str:
    """The API reference page: every operation of every path, then every schema."""
    info = spec.get("info", {})
    schemes = spec.get("components", {}).get("securitySchemes", {})
    lines = [
        "# API reference",
        "",
        f"{info.get('title', '')} {info.get('version', '')}: {info.get('description', '')}",
        "",
        "Rendered from `src/iotpm/api/openapi.json` when the site is built (`docs/hooks/site.py`); the "
        "document is generated from the routes (`iotpm api openapi`) and served at `/openapi.json`. "
        "How to call it, with curl: [the analytics API](api.md); the operator's writes: "
        "[Operate](operate.md#operate-iotpm-on-a-plant).",
        "",
        "| credential | how it is sent |",
        "|---|---|",
    ]
    for name, scheme in schemes.items():
        sent = f"{scheme.get('in', '')} `{scheme.get('name', '')}`"
        if "description" in scheme:
            sent += f": {scheme['description']}"
        lines.append(f"| `{name}` | {_cell(sent)} |")
    lines.append("")
    default_security = spec.get("security", [])
    for path in sorted(spec.get("paths", {})):
        for method in METHODS:
            op = spec["paths"][path].get(method)
            if op is not None:
                lines += _operation(path, method, op, default_security)
    lines += ["## Schemas", ""]
    for name, schema in sorted(spec.get("components", {}).get("schemas", {}).items()):
        lines += _schema(name, schema)
    return "\n".join(lines)


def _site_link(target: str, depth: int) -> str | None:
    """Where the site carries a repository path a page links to, relative to that page; None if it does not."""
    prefix = "../" * depth
    if target in CARRIED:
        return prefix + CARRIED[target]
    if target.startswith(FIGURES):
        return prefix + "figures/" + target[len(FIGURES) :]
    return None


def on_files(files: Any, config: Any) -> Any:
    from mkdocs.structure.files import File

    spec = json.loads(OPENAPI.read_text())
    files.append(File.generated(config, "api-reference.md", content=render_openapi(spec)))
    files.append(File.generated(config, "benchmarks.md", content=(BENCHMARKS / "README.md").read_text()))
    for image in sorted((BENCHMARKS / "figures").glob("*.png")):
        files.append(File.generated(config, f"figures/{image.name}", abs_src_path=str(image)))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    src_uri: str = page.file.src_uri
    depth = src_uri.count("/")

    def repoint(match: re.Match[str]) -> str:
        target = posixpath.normpath(posixpath.join("docs", posixpath.dirname(src_uri), match.group(2)))
        link = _site_link(target, depth)
        return match.group(0) if link is None else f"{match.group(1)}{link}{match.group(3)}"

    return re.sub(r"(\]\()(\.\./[^)#\s]+)([)#])", repoint, markdown)
