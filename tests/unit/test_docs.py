"""The docs: the README stays a front door, the layout page matches the tree, the site's hooks.

``mkdocs build --strict`` (in scripts/test.sh) checks every link, anchor and nav entry; these tests
hold what it cannot: the layout page against the repository, and the API reference against the
OpenAPI document it is rendered from.
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAYOUT = ROOT / "docs" / "layout.md"


@pytest.fixture(scope="module")
def hooks() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_site_hooks", ROOT / "docs" / "hooks" / "site.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def layout_paths() -> list[str]:
    """The first column of the layout page's table."""
    return re.findall(r"^\| `([^`]+)` \|", LAYOUT.read_text(), flags=re.MULTILINE)


def tracked() -> list[str]:
    done = subprocess.run(["git", "ls-files"], cwd=ROOT, check=True, capture_output=True, text=True)
    return done.stdout.splitlines()


def test_every_path_on_the_layout_page_exists() -> None:
    missing = [p for p in layout_paths() if not (ROOT / p).exists()]
    assert not missing, f"docs/layout.md names paths that are not in the tree: {missing}"


def test_the_layout_page_names_every_folder_and_package() -> None:
    files = tracked()
    folders = {f.split("/")[0] + "/" for f in files if "/" in f}
    folders |= {
        "/".join(f.split("/")[:2]) + "/" for f in files if f.startswith(("terraform/", "tests/")) and f.count("/") > 1
    }
    folders |= {
        "src/iotpm/" + f.split("/")[2] + ("/" if f.count("/") > 2 else "") for f in files if f.startswith("src/iotpm/")
    }
    named = set(layout_paths())
    # a folder is named by itself or by a path inside it (src/ by src/iotpm/..., tests/ by tests/unit/)
    unnamed = sorted(f for f in folders if not any(n == f or n.startswith(f) for n in named))
    assert not unnamed, f"docs/layout.md does not say what these hold: {unnamed}"


def test_every_repository_path_the_docs_name_exists() -> None:
    """A page that names a moved or deleted file is stale: `src/...`, `tests/...`, or `detection/engine.py`."""
    packages = {p.name for p in (ROOT / "src" / "iotpm").iterdir()}
    roots = ("src", "tests", "benchmarks", "scripts", "terraform", "lambda_build", "docs", ".ci")
    stale = []
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for name in re.findall(r"`([^`\s]+/[^`\s]*)`", page.read_text()):
            path = name.rstrip("/.,:;")
            if re.search(r"[<>{}*=$]", path):  # a pattern or a placeholder, not a path
                continue
            first = path.split("/")[0]
            if first in roots:
                target = ROOT / path
            elif first in packages and path.endswith((".py", ".c", ".sql", ".html", ".json")):
                target = ROOT / "src" / "iotpm" / path
            else:
                continue
            if not target.exists():
                stale.append(f"{page.relative_to(ROOT)}: {name}")
    assert not stale, f"the docs name paths that are not in the tree: {stale}"


def test_the_readme_is_a_front_door() -> None:
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 300, "README.md is the front door: the rest goes in docs/"
    assert "./scripts/local-up.sh" in readme and "./scripts/test.sh" in readme
    assert "./scripts/test.sh" in (ROOT / ".ci" / "run").read_text()  # CI runs the README's test command
    for target in re.findall(r"\]\(([^)#\s]+)", readme):
        if "://" not in target:
            assert (ROOT / target).exists(), f"README.md links to {target}, which is not in the tree"


def test_the_api_reference_has_every_operation_and_schema(hooks: ModuleType) -> None:
    spec = json.loads((ROOT / "src" / "iotpm" / "api" / "openapi.json").read_text())
    page = hooks.render_openapi(spec)
    for path, item in spec["paths"].items():
        for method, op in item.items():
            heading = f"## {method.upper()} `{path}`\n"
            assert heading in page
            section = page.split(heading)[1].split("\n## ")[0]
            for param in op.get("parameters", []):
                assert f"| `{param['name']}` | {param['in']} |" in section
    for name, schema in spec["components"]["schemas"].items():
        section = page.split(f"### {name}\n")[1].split("\n### ")[0]
        for field in schema.get("properties", {}):
            assert f"| `{field}` |" in section, f"{name}.{field} missing from the API reference"
    assert "[ReadingsPage](#readingspage)" in page  # a response names its schema, linked to its section


def test_links_to_repository_files_the_site_carries_point_at_its_copy(hooks: ModuleType) -> None:
    page = SimpleNamespace(file=SimpleNamespace(src_uri="analytics.md"))
    text = (
        "![a](../benchmarks/figures/report.png) [b](../benchmarks/README.md) "
        "[c](../src/iotpm/api/openapi.json) [d](../lambda_build/build.py) [e](cost.md#costs)"
    )
    out = hooks.on_page_markdown(text, page, None, None)
    assert out == (
        "![a](figures/report.png) [b](benchmarks.md) [c](api-reference.md) "
        "[d](../lambda_build/build.py) [e](cost.md#costs)"
    )
    nested = SimpleNamespace(file=SimpleNamespace(src_uri="guide/page.md"))
    assert (
        hooks.on_page_markdown("![a](../../benchmarks/figures/x.png)", nested, None, None) == "![a](../figures/x.png)"
    )
