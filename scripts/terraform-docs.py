#!/usr/bin/env python3
"""Module READMEs: the inputs and outputs tables of each terraform/modules/<name>/README.md,
generated from its variables.tf and outputs.tf (between BEGIN_TF_DOCS/END_TF_DOCS, as
terraform-docs writes them). Text outside the markers is the module's own and is kept.

    python3 scripts/terraform-docs.py          # write the READMEs
    python3 scripts/terraform-docs.py --check  # exit 1 naming each README that is out of date (CI)

The blocks are read as text by scripts/tf_blocks.py (the files are `terraform fmt`-ed; no
HCL library needed for two tables).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tf_blocks beside this script, however it is loaded
from tf_blocks import blocks as read_blocks
from tf_blocks import value as one_line

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- BEGIN_TF_DOCS -->", "<!-- END_TF_DOCS -->"


def blocks(path: Path, kind: str) -> list[tuple[str, dict[str, str]]]:
    """(name, {argument: its value on one line}) of each top-level ``kind`` block of a file."""
    if not path.exists():
        return []
    return [
        (name, {a: one_line(lines) for a, lines in args.items()})
        for name, args in read_blocks(path.read_text(), kind).items()
    ]


def text(value: str) -> str:
    """An HCL string literal's text (the escapes used here are JSON's)."""
    return str(json.loads(value)) if value.startswith('"') else value


def cell(value: str) -> str:
    return re.sub(r"\s+", " ", value).replace("|", "\\|").strip()


def render(module: Path) -> str:
    rows = ["## Inputs", "", "| Name | Description | Type | Default | Required |", "|---|---|---|---|:---:|"]
    for name, a in blocks(module / "variables.tf", "variable"):
        default = f"`{cell(a['default'])}`" if "default" in a else "n/a"
        required = "no" if "default" in a else "yes"
        described, kind = cell(text(a.get("description", ""))), cell(a.get("type", "any"))
        rows.append(f"| `{name}` | {described} | `{kind}` | {default} | {required} |")
    rows += ["", "## Outputs", "", "| Name | Description |", "|---|---|"]
    for name, a in blocks(module / "outputs.tf", "output"):
        rows.append(f"| `{name}` | {cell(text(a.get('description', '')))} |")
    return "\n".join([BEGIN, *rows, END])


def readme(module: Path) -> str:
    """The README with fresh tables (a new one starts from main.tf's opening comment)."""
    path = module / "README.md"
    if path.exists():
        current = path.read_text()
        if BEGIN in current and END in current:
            head, _, rest = current.partition(BEGIN)
            return head + render(module) + rest.partition(END)[2]
        return current.rstrip() + "\n\n" + render(module) + "\n"
    intro = []
    for line in (module / "main.tf").read_text().splitlines():
        if not line.startswith("#"):
            break
        intro.append(line.lstrip("#").strip())
    lines = [f"# {module.name}", "", " ".join(intro), "", render(module), ""]
    return "\n".join(lines)


def modules() -> list[Path]:
    return sorted(p.parent for p in (ROOT / "terraform" / "modules").glob("*/variables.tf"))


def main(argv: list[str]) -> int:
    stale = []
    for module in modules():
        want = readme(module)
        path = module / "README.md"
        if path.exists() and path.read_text() == want:
            continue
        if "--check" in argv:
            stale.append(str(path.relative_to(ROOT)))
        else:
            path.write_text(want)
    if stale:
        print("out of date (run python3 scripts/terraform-docs.py):", *stale, sep="\n  ", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
