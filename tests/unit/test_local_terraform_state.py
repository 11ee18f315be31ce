"""The twin's Terraform state holds the API key: its folder is the owner's alone (0700), also
when the folder existed with wider rights (an older release, or a caller's own folder)."""

from __future__ import annotations

import shutil
import stat
from pathlib import Path

import pytest

from iotpm.local.terraform import LocalTerraform, repo_root


@pytest.mark.skipif(shutil.which("terraform") is None, reason="LocalTerraform needs the terraform binary on PATH")
@pytest.mark.parametrize("existing", [False, True])
def test_the_state_folder_is_private(tmp_path: Path, existing: bool) -> None:
    state = tmp_path / "twin" / "terraform"
    if existing:
        state.mkdir(parents=True, mode=0o755)
        state.chmod(0o755)
    LocalTerraform(repo_root(Path(__file__).resolve().parent), state, "http://127.0.0.1:1")
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
