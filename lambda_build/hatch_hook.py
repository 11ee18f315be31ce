"""Hatchling build hook: compiles the detection kernel's C library into the wheel.

Without a C compiler the build goes on and warns: the package then runs the numpy
kernel, which gives the same results more slowly.
"""

from __future__ import annotations

import importlib.util
import subprocess
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


def _native_module() -> Any:
    spec = importlib.util.spec_from_file_location("iotpm_native_build", Path(__file__).with_name("native.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class KernelBuildHook(BuildHookInterface):  # type: ignore[type-arg]
    """Builds ``_kernel.<machine>.so`` next to its source, and ships it in a wheel."""

    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel":
            return
        native = _native_module()
        try:
            library = native.build()
        except (native.CompilerNotFoundError, subprocess.CalledProcessError) as exc:
            self.app.display_warning(f"iotpm: C kernel not built ({exc}); the numpy kernel will run")
            return
        if version == "editable":
            return  # the source tree is on the path: the library sits next to its source
        build_data["pure_python"] = False
        build_data["infer_tag"] = True
        build_data["force_include"][str(library)] = f"iotpm/detection/{library.name}"
