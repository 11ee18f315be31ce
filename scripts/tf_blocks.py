"""The top-level ``variable`` and ``output`` blocks of a `terraform fmt`-ed file, read as text
(scripts/terraform-docs.py and scripts/terraform-passthrough.py both read them this way).

A formatted file starts a block at column 0 and ends it with a lone "}", and the block's
arguments sit two spaces in; that is all this reader relies on, so no HCL library is
needed. Nested blocks (``validation``, ...) are left out: they check a value, they are not
one of the block's arguments.
"""

from __future__ import annotations

import re

BLOCK = re.compile(r'^(variable|output) "([^"]+)" \{$')
ARG = re.compile(r"^  ([a-z_]+)\s*=\s*(.*)$")
NESTED = re.compile(r"^  [a-z_]+ \{$")


def blocks(text: str, kind: str) -> dict[str, dict[str, list[str]]]:
    """{name: {argument: its source lines}} of each top-level ``kind`` block, in file order."""
    out: dict[str, dict[str, list[str]]] = {}
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        m = BLOCK.match(lines[i])
        i += 1
        if not m or m.group(1) != kind:
            continue
        args: dict[str, list[str]] = {}
        current: str | None = None
        while i < len(lines) and lines[i] != "}":
            line = lines[i]
            arg = ARG.match(line)
            if arg:
                current = arg.group(1)
                args[current] = [line]
            elif NESTED.match(line):
                current = None
                while i < len(lines) and lines[i] != "  }":
                    i += 1
            elif current is not None and line.strip():  # a multi-line value, its closing brackets too
                args[current].append(line)
            i += 1
        out[m.group(2)] = args
    return out


def value(lines: list[str]) -> str:
    """An argument's value as one line: the text after its "=", then each continuation line."""
    m = ARG.match(lines[0])
    first = m.group(2) if m else lines[0].strip()
    return " ".join([first, *(line.strip() for line in lines[1:])])
