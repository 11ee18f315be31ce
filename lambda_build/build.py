"""Reproducible Lambda zips for the python3.12 runtime, from manylinux wheels.

    python lambda_build/build.py                       # processor, api and compaction, x86_64
    python lambda_build/build.py processor --arch arm64
    python lambda_build/build.py --with-runtime        # also bundle boto3/botocore

Each function's third-party requirements are pinned in ``requirements/<function>.txt``
and installed for the target platform (``--platform manylinux_2_28_<arch>
--python-version 3.12 --only-binary=:all:``), never for the build machine. The zip
holds those packages plus the parts of ``src/iotpm`` a Lambda needs; what the
runtime already provides (boto3, botocore, s3transfer, jmespath, urllib3, dateutil,
six) is left out unless ``--with-runtime`` is given. Entries are sorted, dated
1980-01-01 and given fixed permissions, so the same inputs give the same bytes; the
sha256 and sizes are printed as one JSON object per zip (and the sha256 written next
to the zip). ``--smoke`` unpacks each zip and runs its handler on a sample event
under Python 3.12 (found on PATH or under pyenv) with nothing else on ``sys.path``.
Standard library only: it runs before the project is installed.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import native  # lambda_build/native.py (this folder is not a package)

ROOT = Path(__file__).resolve().parent.parent
HERE = ROOT / "lambda_build"
FUNCTIONS = ("processor", "api", "compaction")  # compaction: the archive's Parquet job (DuckDB)
# The python3.12 runtime is Amazon Linux 2023 (glibc 2.34): manylinux_2_28 wheels run there.
ARCHES = {"x86_64": "x86_64", "arm64": "aarch64"}
MANYLINUX = ("manylinux_2_28", "manylinux2014")
RUNTIME_VERSION = "3.12"
# Packages the python3.12 Lambda runtime ships (left out unless --with-runtime).
RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer", "jmespath", "urllib3", "dateutil", "python_dateutil", "six")
# Parts of the iotpm package no Lambda imports (operator CLI, emulator, local twin, simulator).
PACKAGE_EXCLUDES = ("cli", "emulator", "local", "simulator")
ZIP_DATE = (1980, 1, 1, 0, 0, 0)
SMOKE = {
    "processor": """
import json
from iotpm.handlers.processor import ProcessorHandler
from iotpm.service import Processor
from iotpm.service import memory as m
from iotpm.service.samples import batch, kinesis_event
p = Processor(states=m.MemoryStates(), readings=m.MemoryReadings(), anomalies=m.MemoryAnomalies(),
              rollups=m.MemoryRollups(), archive=m.MemoryArchive(), alerts=m.MemoryAlerts())
out = ProcessorHandler(lambda: p)(kinesis_event(batch(5, 4, start_ms=1_790_000_000_000)))
assert out == {"batchItemFailures": []}, out
assert len(p.readings.items) == 20, len(p.readings.items)
from iotpm.detection import native
assert native.load() is not None, "the zip's C kernel did not load"
print("smoke ok", json.dumps(out))
""",
    "api": """
import json
from iotpm.handlers.api import build_app
from iotpm.api.memory import MemoryQueries
app = build_app(MemoryQueries())
out = app.resolve({"httpMethod": "GET", "path": "/health", "resource": "/health", "headers": {},
                   "requestContext": {"stage": "v1"}}, None)
assert out["statusCode"] == 200, out
print("smoke ok", out["body"])
""",
    "compaction": """
import duckdb
from iotpm.handlers.compaction import CompactionHandler, handler
assert isinstance(handler, CompactionHandler)
assert duckdb.connect().execute("select 41 + 1").fetchall() == [(42,)]
print("smoke ok", duckdb.__version__)
""",
}


def main() -> int:
    args = _parse()
    out_dir = Path(args.out).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    for function in args.functions or FUNCTIONS:
        report = build(function, args.arch, out_dir, with_runtime=args.with_runtime)
        if args.smoke:
            report["smoke"] = smoke(Path(report["zip"]), function, args.arch)
        report["zip"] = os.path.relpath(report["zip"], Path.cwd())
        print(json.dumps(report))
        if report.get("smoke") == "failed":
            return 1
    return 0


def _parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Build reproducible Lambda zips (python3.12, manylinux wheels).")
    p.add_argument("functions", nargs="*", metavar="function", help=f"any of {', '.join(FUNCTIONS)} (default: all)")
    p.add_argument("--arch", choices=sorted(ARCHES), default=os.environ.get("IOTPM_LAMBDA_ARCH", "x86_64"))
    p.add_argument("--out", default=str(HERE / "out"), help="output folder (default: lambda_build/out)")
    p.add_argument("--with-runtime", action="store_true", help="bundle boto3/botocore instead of the runtime's")
    p.add_argument("--smoke", action="store_true", help="run each handler from its unpacked zip under Python 3.12")
    args = p.parse_args()
    unknown = sorted(set(args.functions) - set(FUNCTIONS))
    if unknown:
        p.error(f"unknown function(s) {', '.join(unknown)}; choose from {', '.join(FUNCTIONS)}")
    return args


def build(function: str, arch: str, out_dir: Path, *, with_runtime: bool) -> dict[str, object]:
    """Build ``<function>-<arch>.zip`` in ``out_dir`` and return its figures."""
    with tempfile.TemporaryDirectory(prefix=f"iotpm-{function}-") as tmp:
        stage = Path(tmp) / "stage"
        _install_requirements(function, arch, stage, with_runtime=with_runtime)
        _copy_package(stage / "iotpm", function)
        kernel = _build_kernel(stage / "iotpm" / "detection", arch)
        _prune(stage)
        target = out_dir / f"{function}-{arch}.zip"
        unpacked, files = _write_zip(stage, target)
    digest = hashlib.sha256(target.read_bytes()).hexdigest()
    target.with_suffix(".zip.sha256").write_text(f"{digest}  {target.name}\n")
    return {
        "function": function,
        "arch": arch,
        "runtime": f"python{RUNTIME_VERSION}",
        "zip": str(target),
        "sha256": digest,
        "compressed_mb": round(target.stat().st_size / 1e6, 2),
        "unpacked_mb": round(unpacked / 1e6, 2),
        "files": files,
        "native_kernel": kernel,
    }


def _install_requirements(function: str, arch: str, stage: Path, *, with_runtime: bool) -> None:
    reqs = [HERE / "requirements" / f"{function}.txt"]
    if with_runtime:
        reqs.append(HERE / "requirements" / "runtime.txt")
    _pip_target(stage, reqs, arch)


def _pip_target(stage: Path, reqs: list[Path], arch: str) -> None:
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile"]
    cmd += ["--target", str(stage), "--python-version", RUNTIME_VERSION]
    for tag in MANYLINUX:
        cmd += ["--platform", f"{tag}_{ARCHES[arch]}"]
    cmd += ["--implementation", "cp", "--only-binary=:all:", "--no-deps"]
    for r in reqs:
        cmd += ["-r", str(r)]
    subprocess.run(cmd, check=True)


def _copy_package(dest: Path, function: str) -> None:
    src = ROOT / "src" / "iotpm"
    excluded = set(PACKAGE_EXCLUDES) | ({"api"} if function == "processor" else set())
    shutil.copytree(src, dest, ignore=lambda d, names: _ignored(Path(d), names, src, excluded))


def _ignored(folder: Path, names: list[str], src: Path, excluded: set[str]) -> set[str]:
    top = folder == src
    # libraries built for this machine are left behind: the zip gets one built for its target
    local = {n for n in names if n.startswith("_kernel.") and (n.endswith(".so") or n.endswith(".tmp"))}
    return local | {n for n in names if n == "__pycache__" or n.endswith(".pyc") or (top and n in excluded)}


def _build_kernel(dest: Path, arch: str) -> str:
    """The detection kernel's C library for ``arch``: its file name, or why the numpy kernel will run."""
    try:
        return native.build(dest, ARCHES[arch]).name
    except native.CompilerNotFoundError as exc:
        print(f"warning: {exc}; this zip runs the numpy kernel (same results, slower)", file=sys.stderr)
        return f"not built: {exc}"


def _prune(stage: Path) -> None:
    """Drop what a Lambda never runs: test suites, scripts (their shebangs name this machine), caches."""
    for pattern in ("bin", "**/tests", "**/__pycache__", "*.dist-info/direct_url.json"):
        for p in glob.glob(str(stage / pattern), recursive=True):
            shutil.rmtree(p) if os.path.isdir(p) else os.remove(p)


def _write_zip(stage: Path, target: Path) -> tuple[int, int]:
    paths = sorted(p for p in stage.rglob("*") if p.is_file())
    unpacked = 0
    tmp = target.with_suffix(".zip.tmp")
    with zipfile.ZipFile(tmp, "w") as zf:
        for path in paths:
            data = path.read_bytes()
            unpacked += len(data)
            info = zipfile.ZipInfo(path.relative_to(stage).as_posix(), ZIP_DATE)
            info.external_attr = (0o100755 if os.access(path, os.X_OK) else 0o100644) << 16
            info.create_system = 3  # unix, whatever builds it
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data, compresslevel=9)
    tmp.replace(target)
    return unpacked, len(paths)


def find_python312() -> str | None:
    """A working Python 3.12: ``IOTPM_PYTHON312``, a pyenv install, or ``python3.12`` on PATH."""
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates = [os.environ.get("IOTPM_PYTHON312")]
    candidates += sorted(glob.glob(str(pyenv_root / "versions" / "3.12*" / "bin" / "python3.12")), reverse=True)
    candidates.append(shutil.which("python3.12"))  # may be a pyenv shim that refuses to run: checked below
    for c in candidates:
        if c and os.access(c, os.X_OK):
            code = "import sys; print(sys.version_info[:2])"
            probe = subprocess.run([c, "-c", code], capture_output=True, text=True, check=False)
            if probe.returncode == 0 and probe.stdout.strip() == "(3, 12)":
                return c
    return None


def smoke(zip_path: Path, function: str, arch: str) -> str:
    """Run the handler from the unpacked zip under Python 3.12; ``skipped: <why>`` when it cannot run here."""
    host = {"x86_64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}.get(os.uname().machine)
    if host != arch:
        return f"skipped: {arch} wheels cannot run on this {os.uname().machine} machine"
    python = find_python312()
    if python is None:
        return "skipped: no Python 3.12 found (set IOTPM_PYTHON312)"
    with tempfile.TemporaryDirectory(prefix="iotpm-smoke-") as tmp:
        task, runtime = Path(tmp) / "task", Path(tmp) / "runtime"
        with zipfile.ZipFile(zip_path) as zf:
            zf.extractall(task)
        # What the Lambda runtime provides (boto3 and its dependencies) sits after the zip, as in Lambda.
        _pip_target(runtime, [HERE / "requirements" / "runtime.txt"], arch)
        code = f"import sys; sys.path[:0] = [{str(task)!r}, {str(runtime)!r}]\n" + SMOKE[function]
        # -S -I: no site-packages, no user site, no PYTHON* variables: the zip, the runtime's packages, the stdlib.
        run = subprocess.run([python, "-S", "-I", "-c", code], capture_output=True, text=True, check=False)
    if run.returncode != 0:
        sys.stderr.write(run.stdout + run.stderr)
        return "failed"
    return "ok"


if __name__ == "__main__":
    sys.exit(main())
