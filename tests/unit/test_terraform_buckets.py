"""Every S3 bucket in terraform/ is made by terraform/modules/bucket (versioning, SSE-KMS, public
access block, TLS-only policy, lifecycle), so the copies cannot drift: a bucket resource written
anywhere else (as the results bucket once was, without the TLS-only policy) fails here."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2] / "terraform"
#: ``resource "aws_s3_bucket"`` and every ``aws_s3_bucket_*`` resource (policy, lifecycle, ...)
BUCKET_RESOURCE = re.compile(r'^\s*resource\s+"(aws_s3_bucket(?:_[a-z_]+)?)"', re.MULTILINE)
MODULE_SOURCE = re.compile(r'module\s+"[^"]+"\s*\{[^}]*?source\s*=\s*"([^"]+)"', re.DOTALL)


def bucket_resources_outside_the_module(root: Path) -> list[str]:
    """``file: resource type`` of each S3 bucket resource not in modules/bucket."""
    module = root / "modules" / "bucket"
    found = []
    for tf in sorted(root.rglob("*.tf")):
        if ".terraform" in tf.parts or module in tf.parents:
            continue
        found += [f"{tf.relative_to(root)}: {m}" for m in BUCKET_RESOURCE.findall(tf.read_text())]
    return found


def test_no_bucket_is_written_outside_the_bucket_module() -> None:
    assert bucket_resources_outside_the_module(ROOT) == []


def test_the_bucket_module_is_used_by_every_module_that_keeps_objects() -> None:
    users = {
        tf.parent.name
        for tf in (ROOT / "modules").rglob("*.tf")
        if any(src.rstrip("/").endswith("/bucket") for src in MODULE_SOURCE.findall(tf.read_text()))
    }
    assert {"storage", "analytics", "iot"} <= users


def test_the_check_finds_a_bucket_written_by_hand(tmp_path: Path) -> None:
    (tmp_path / "modules" / "x").mkdir(parents=True)
    (tmp_path / "modules" / "x" / "main.tf").write_text(
        'resource "aws_s3_bucket" "this" {\n  bucket = "b"\n}\n\nresource "aws_s3_bucket_policy" "this" {}\n'
    )
    (tmp_path / "modules" / "bucket").mkdir()
    (tmp_path / "modules" / "bucket" / "main.tf").write_text('resource "aws_s3_bucket" "this" {}\n')
    assert bucket_resources_outside_the_module(tmp_path) == [
        "modules/x/main.tf: aws_s3_bucket",
        "modules/x/main.tf: aws_s3_bucket_policy",
    ]
