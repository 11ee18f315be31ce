"""The compiled kernel: ``_kernel.c``, built into ``_kernel.<machine>.so`` and called through ctypes.

The numpy kernel in :mod:`iotpm.detection.engine` is bound by the number of numpy
calls per time step (a device's recursions must run one reading at a time); the C
kernel does the same arithmetic in one call per batch and gives the same bits (a
test holds both to that). It is optional: where no library was built for this
machine, or the library was built from another version of the source, the numpy
kernel runs.

The library is built by the package's build hook (``pip install``) and by
``lambda_build`` for the Lambda's architecture; it uses no libc function, so it has
no glibc version to match.
"""

from __future__ import annotations

import ctypes
import hashlib
import platform
from functools import cache
from pathlib import Path
from typing import Final

import numpy as np

from iotpm.detection.state import FloatArray, IntArray

HERE: Final = Path(__file__).resolve().parent
SOURCE: Final = HERE / "_kernel.c"
ABI: Final = 1
#: state-vector fields whose offsets the kernel takes, in its enum's order.
OFFSETS: Final = (
    "mu", "s", "s_min", "dscale", "last_x", "run", "flat_thr", "cp", "cn", "fast", "slow",
    "zmax", "dmax", "smooth", "mew", "n", "last_t", "dt_exp", "alarm", "above", "below",
    "cool", "health", "t2_on", "alarm_since", "t2_hist", "P",
)  # fmt: skip
#: parameters the kernel takes, in its enum's order.
PARAMS: Final = (
    "adapt_rate", "tail_decay", "cusum_clip", "adapt_clip", "cusum_k", "cusum_h", "tail_factor",
    "spike_z", "roc_z", "dropout_factor", "trend_rate", "trend_rate_slow", "t2_clip", "t2_limit",
    "mewma_rate", "ewma_limit", "raise_level", "clear_level", "min_duration", "clear_duration",
    "cooldown", "dropout_alarms", "iso_bc", "iso_cd",
)  # fmt: skip
MAX_CHANNELS: Final = 64

_P = ctypes.c_void_p
_I64 = ctypes.c_int64


def library_name(machine: str | None = None) -> str:
    """The library's file name for a machine (``platform.machine()``: x86_64, aarch64)."""
    return f"_kernel.{machine or platform.machine()}.so"


def source_digest(source: bytes) -> str:
    """The sha256 of the kernel's source, which the build embeds in the library."""
    return hashlib.sha256(source).hexdigest()


class NativeKernel:
    """The loaded library, one typed entry point."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        self._fn = lib.iotpm_kernel
        self._fn.restype = ctypes.c_int
        self._fn.argtypes = [_I64, _I64, _I64, _I64, ctypes.c_int32] + [_P] * 18

    def __call__(
        self,
        statistics: bool,
        offsets: IntArray,
        params: FloatArray,
        packed: FloatArray,
        inputs: tuple[IntArray, FloatArray, IntArray, FloatArray, FloatArray, FloatArray],
        outputs: tuple[FloatArray, ...],
    ) -> None:
        """Run over ``packed`` (d, size) in place; ``inputs`` ts, x, lengths, low, high, vibration."""
        d, size = packed.shape
        ts, x = inputs[0], inputs[1]
        arrays = (offsets, params, packed, *inputs, *outputs)
        for a in arrays:
            if not a.flags.c_contiguous or a.dtype not in (np.float64, np.int64):
                raise ValueError("the native kernel takes C-contiguous float64 and int64 arrays")
        rc = self._fn(d, ts.shape[1], x.shape[2], size, int(statistics), *(a.ctypes.data for a in arrays))
        if rc != 0:
            raise ValueError(f"the native kernel takes 1 to {MAX_CHANNELS} channels, not {x.shape[2]}")


@cache
def load() -> NativeKernel | None:
    """The kernel built for this machine from this source, or None (the numpy kernel runs)."""
    return load_from(HERE)


def load_from(folder: Path) -> NativeKernel | None:
    """The library in ``folder`` if it was built for this machine from the ``_kernel.c`` beside it."""
    path, source = folder / library_name(), folder / SOURCE.name
    if not path.is_file() or not source.is_file():
        return None
    try:
        lib = ctypes.CDLL(str(path))
        lib.iotpm_kernel_source.restype = ctypes.c_char_p
        built = lib.iotpm_kernel_source()
        abi = lib.iotpm_kernel_abi()
    except (OSError, AttributeError):
        return None
    if abi != ABI or built is None or built.decode() != source_digest(source.read_bytes()):
        return None  # built from another version of _kernel.c
    return NativeKernel(lib)
