"""The emulator's moto patches: pinned to the tested release, and a clear error when an internal is missing."""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest

from iotpm.emulator import server

ROOT = Path(__file__).resolve().parents[2]


def test_the_installed_moto_has_every_internal_the_emulator_patches() -> None:
    assert server.missing_internals() == [], "moto changed: update src/iotpm/emulator/server.py and its pin"


def test_moto_is_pinned_to_the_release_the_patches_were_tested_with() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    pins = [d for deps in extras.values() for d in deps if d.startswith("moto")]
    assert pins == [f"moto[server]=={server.TESTED_MOTO}"]
    assert version("moto") == server.TESTED_MOTO


@pytest.mark.parametrize("target", sorted(server.PATCHED))
def test_a_missing_internal_stops_the_emulator_with_its_name(monkeypatch: pytest.MonkeyPatch, target: str) -> None:
    import importlib

    module, _, attrs = target.partition(":")
    *path, last = attrs.split(".")
    owner = importlib.import_module(module)
    for attr in path:
        owner = getattr(owner, attr)
    monkeypatch.delattr(owner, last)
    with pytest.raises(RuntimeError, match=re.escape(target)) as err:
        server.check_moto()
    assert f"moto[server]=={server.TESTED_MOTO}" in str(err.value)


def test_every_patch_names_what_it_works_around() -> None:
    assert all(len(why.split()) >= 3 for why in server.PATCHED.values())
    source = Path(server.__file__).read_text()
    for target in server.PATCHED:
        assert target.rpartition(".")[2].split(":")[-1] in source, f"{target} is listed but never patched"
