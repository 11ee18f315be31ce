"""Builds the detection kernel's C library (``src/iotpm/detection/_kernel.c``).

    python lambda_build/native.py                    # for this machine, next to the source
    python lambda_build/native.py --machine aarch64  # cross-compiled (gcc-aarch64-linux-gnu)

The package's build hook calls this on ``pip install``; ``build.py`` calls it for the
Lambda's architecture. The flags keep the numpy kernel's arithmetic bit for bit
(``-ffp-contract=off``: no fused multiply-add; no ``-ffast-math``) and the library free
of libc calls (``-fno-math-errno`` makes sqrt an instruction), so it runs on any glibc.
The library embeds the sha256 of its source; the loader refuses one built from other
source. Standard library only: it runs before the project is installed.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "src" / "iotpm" / "detection"
SOURCE = PACKAGE / "_kernel.c"
FLAGS = ("-O2", "-std=c99", "-ffp-contract=off", "-fno-math-errno", "-fPIC", "-shared", "-Wall", "-Wextra", "-Werror")
# Debian's cross compilers, by target machine
CROSS = {"x86_64": "x86_64-linux-gnu-gcc", "aarch64": "aarch64-linux-gnu-gcc"}


class CompilerNotFoundError(RuntimeError):
    """No C compiler for the requested machine."""


def library_name(machine: str) -> str:
    """Must match ``iotpm.detection.native.library_name``."""
    return f"_kernel.{machine}.so"


def compiler(machine: str) -> str:
    """``CC`` when set; the native cc for this machine; else Debian's cross compiler."""
    if os.environ.get("CC"):
        return os.environ["CC"]
    candidates = ["cc", "gcc"] if machine == platform.machine() else []
    candidates.append(CROSS.get(machine, f"{machine}-linux-gnu-gcc"))
    for name in candidates:
        if shutil.which(name):
            return name
    raise CompilerNotFoundError(f"no C compiler for {machine} (tried {', '.join(candidates)})")


def build(out_dir: Path = PACKAGE, machine: str | None = None) -> Path:
    """Compile the kernel for ``machine`` into ``out_dir``; returns the library's path."""
    machine = machine or platform.machine()
    source = SOURCE.read_bytes()
    layout = _layout_module()
    generated = layout.header()
    digest = hashlib.sha256(source + generated.encode()).hexdigest()
    target = out_dir / library_name(machine)
    tmp = target.with_suffix(".so.tmp")
    with tempfile.TemporaryDirectory() as include:
        (Path(include) / layout.HEADER_NAME).write_text(generated)
        cmd = [compiler(machine), *FLAGS, f"-I{include}", f'-DIOTPM_KERNEL_SOURCE="{digest}"', "-o", str(tmp)]
        # the same source and compiler give the same bytes wherever the tree is checked out
        cmd += [f"-ffile-prefix-map={ROOT}=.", f"-ffile-prefix-map={include}=.", str(SOURCE)]
        subprocess.run(cmd, check=True)
    tmp.replace(target)
    return target


def _layout_module() -> Any:
    """``iotpm/detection/_layout.py`` (standard library only), loaded by path: the layout the
    C header is generated from, declared once for both kernels."""
    spec = importlib.util.spec_from_file_location("iotpm_kernel_layout", PACKAGE / "_layout.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--machine", default=platform.machine(), help="x86_64 or aarch64 (default: this machine)")
    parser.add_argument("--out", type=Path, default=PACKAGE, help="folder for the library (default: the package)")
    args = parser.parse_args()
    try:
        print(build(args.out, args.machine))
    except CompilerNotFoundError as exc:
        sys.exit(str(exc))


if __name__ == "__main__":
    main()
