#!/usr/bin/env python3
"""Module READMEs: the inputs and outputs tables of each terraform/modules/<name>/README.md,
generated from its variables.tf and outputs.tf (between BEGIN_TF_DOCS/END_TF_DOCS, as
terraform-docs writes them). Text outside the markers is the module's own and is kept.

    python3 scripts/terraform-docs.py          # write the READMEs
    python3 scripts/terraform-docs.py --check  # exit 1 naming each README that is out of date (CI)

The files are `terraform fmt`-ed, so a block starts at column 0 and ends with a lone "}",
and its arguments sit two spaces in; that is all this reader relies on (no HCL library
needed for two tables).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- BEGIN_TF_DOCS -->", "<!-- END_TF_DOCS -->"
BLOCK = re.compile(r'^(variable|output) "([^"]+)" \{$')
ARG = re.compile(r"^  ([a-z_]+)\s*=\s*(.*)$")


def blocks(path: Path, kind: str) -> list[tuple[str, dict[str, str]]]:
    """(name, {argument: its source text}) of each top-level ``kind`` block of a file."""
    out: list[tuple[str, dict[str, str]]] = []
    if not path.exists():
        return out
    lines = path.read_text().splitlines()
    i = 0
    while i < len(lines):
        m = BLOCK.match(lines[i])
        i += 1
        if not m or m.group(1) != kind:
            continue
        args: dict[str, str] = {}
        current: str | None = None
        while i < len(lines) and lines[i] != "}":
            line = lines[i]
            arg = ARG.match(line)
            if arg:
                current = arg.group(1)
                args[current] = arg.group(2)
            elif re.match(r"^  [a-z_]+ \{$", line):
                current = None  # a nested block (validation, ...): not documented
            elif current is not None and line.strip():  # a multi-line value, its closing brackets too
                args[current] += " " + line.strip()
            i += 1
        out.append((m.group(2), args))
    return out


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
