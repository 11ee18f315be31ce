"""An in-memory archive as the folder the analytics read: each object at its key, as S3 holds it.

What the processor archived in a test (``MemoryArchive``) becomes a folder that
:class:`~iotpm.analytics.duck.ArchiveDB`, ``iotpm query`` and the fleet report read like the
bucket: the same keys (``raw/year=.../hour=.../...jsonl.gz``) and the same gzip bytes.
"""

from __future__ import annotations

from pathlib import Path

from iotpm.service.archive_objects import encode_lines
from iotpm.service.memory import MemoryArchive


def write_archive(archive: MemoryArchive, root: Path) -> None:
    """Write every object of ``archive`` under ``root`` at its key (folders made as needed)."""
    for key, obj in archive.objects.items():
        target = root / key
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(encode_lines(obj.lines))
