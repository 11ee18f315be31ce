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
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from iotpm.detection._layout import CHANNEL_DETECTORS, DEVICE_DETECTORS, MAX_CHANNELS, OFFSETS, PARAMS, RATES, header
from iotpm.detection.state import FloatArray, IntArray

HERE: Final = Path(__file__).resolve().parent
SOURCE: Final = HERE / "_kernel.c"
ABI: Final = 19
_P = ctypes.c_void_p
_I64 = ctypes.c_int64


def library_name(machine: str | None = None) -> str:
    """The library's file name for a machine (``platform.machine()``: x86_64, aarch64)."""
    return f"_kernel.{machine or platform.machine()}.so"


def source_digest(source: bytes) -> str:
    """The sha256 of the kernel's source and of the layout header generated for it, which the
    build embeds in the library: one built for another source or another layout is refused."""
    return hashlib.sha256(source + header().encode()).hexdigest()


class NativeKernel:
    """The loaded library, one typed entry point."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        self._fn = lib.iotpm_kernel
        self._fn.restype = ctypes.c_int
        self._fn.argtypes = [_I64, _I64, _I64, _I64, ctypes.c_int32] + [_P] * 22
        self._run_down = lib.iotpm_run_down
        self._run_down.restype = None
        scalars: list[Any] = [_I64, _I64, ctypes.c_double, ctypes.c_double]
        self._run_down.argtypes = scalars + [_P] * 12

    def run_down(
        self, keep: float, start_ms: float, series: tuple[FloatArray, ...], levels: tuple[FloatArray, ...]
    ) -> FloatArray:
        """The run-down test (``operating._run_down_steps``): ``series`` v, marks, t_f, weight,
        slow (d, t); ``levels`` lev, lev_t, dev, run, since, began (d,), advanced in place;
        returns out (d, t)."""
        d, t = series[0].shape
        for array in series:
            _check(array, np.float64, (d, t))
        for array in levels:
            _check(array, np.float64, (d,))
        out = np.zeros((d, t))
        self._run_down(d, t, keep, start_ms, *(a.ctypes.data for a in (*series, *levels, out)))
        return out

    def __call__(
        self,
        statistics: bool,
        offsets: IntArray,
        params: FloatArray,
        packed: FloatArray,
        inputs: tuple[IntArray, FloatArray, IntArray, FloatArray, FloatArray, FloatArray, FloatArray, FloatArray],
        outputs: tuple[FloatArray, ...],
    ) -> None:
        """Run over ``packed`` (d, size) in place; ``inputs`` ts, x, lengths, low, high, roles, gate, rates.

        ``roles`` (c,) is 1 for a vibration channel (ISO zones), plus 2 for one that follows the
        load, 4 for one held at a setpoint, 8 for the load proxy, 16 for one that follows the load
        as it is, 32 for a temperature (its low limit waits the settling); ``rates`` (len(RATES), d, t)
        the operating point's per-reading weights.
        ``outputs``: score, alarm, raised, cleared (d, t); channel scores (d, t, c, N_CH);
        device scores (d, t, N_DEV); expected, scale, share, point (d, t, c); the load pass's
        per-reading record (d, t, LOADS), scratch for the channel passes. Shapes and types are
        checked here: the C code trusts them.
        """
        x, lengths = inputs[1], inputs[2]
        d, t, c = x.shape
        _check(offsets, np.int64, (len(OFFSETS),))
        _check(params, np.float64, (len(PARAMS),))
        _check(packed, np.float64, (d, packed.shape[1]))
        # ts, x, lengths, low, high, roles, gate, rates
        in_shapes = ((d, t), (d, t, c), (d,), (d, c), (d, c), (c,), (d, t), (len(RATES), d, t))
        for array, dtype, shape in zip(inputs, _INPUT_TYPES, in_shapes, strict=True):
            _check(array, dtype, shape)
        for array, shape in zip(outputs, _output_shapes(d, t, c), strict=True):
            _check(array, np.float64, shape)
        if not 1 <= c <= MAX_CHANNELS:
            raise ValueError(f"the native kernel takes 1 to {MAX_CHANNELS} channels, not {c}")
        if d and (lengths.min() < 0 or lengths.max() > t):
            raise ValueError("chunk lengths must be within the padded length")
        if offsets.min() < 0 or offsets.max() + c * c > packed.shape[1]:
            raise ValueError("state offsets outside the state vector")
        arrays = (offsets, params, packed, *inputs, *outputs)
        self._fn(d, t, c, packed.shape[1], int(statistics), *(a.ctypes.data for a in arrays))


#: values the C kernel's load and interval passes record per reading (``N_LOADS`` in ``_kernel.c``)
LOADS: Final = 14
_INPUT_TYPES: Final = tuple(
    np.dtype(t) for t in ("int64", "float64", "int64", "float64", "float64", "float64", "float64", "float64")
)


def _output_shapes(d: int, t: int, c: int) -> tuple[tuple[int, ...], ...]:
    n_ch, n_dev = len(CHANNEL_DETECTORS), len(DEVICE_DETECTORS)
    return (
        (d, t),
        (d, t),
        (d, t),
        (d, t),
        (d, t, c, n_ch),
        (d, t, n_dev),
        (d, t, c),
        (d, t, c),
        (d, t, c),
        (d, t, c),
        (d, t, LOADS),
    )


def _check(array: npt.NDArray[Any], dtype: npt.DTypeLike, shape: tuple[int, ...]) -> None:
    if array.dtype != dtype or array.shape != shape or not array.flags.c_contiguous:
        raise ValueError(f"the native kernel takes a C-contiguous {np.dtype(dtype)} {shape} array, not {array.shape}")


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
