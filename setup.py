"""Build of the optional C decode kernels (``bigsmall.native._kernels``); everything else about
the package is declared in pyproject.toml.

Why a setuptools extension (not a ctypes library): the build needs nothing beyond what pip
already brings (setuptools and a C compiler), the kernels take numpy arrays through the buffer
protocol with their sizes checked in C and release the GIL around the decode, and a call costs
~1 us instead of ctypes' ~10 us for 16-19 arguments (one call per chunk on the random-access
path). ``pip install -e .`` rebuilds it (setuptools then copies the library next to the
sources).

Why optional: the numba kernels are the reference and the fallback. A machine without a
compiler (or one that rejects a flag) still installs bigsmall; the build prints a warning and
``bigsmall.native`` reports the extension as absent.
"""

from __future__ import annotations

import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

NATIVE = "bigsmall/native"
HEADERS = [f"{NATIVE}/{h}" for h in ("common.h", "decode8.h", "decodep.h", "encodep.h", "checks.h",
                                          "glue.h", "pybuf.h")]
ENC_HEADERS = [f"{NATIVE}/{h}" for h in ("common.h", "enc_common.h", "enc_tables.h", "enc_count.h",
                                          "enc_glue.h", "enc_rans8.h", "enc_rans4.h",
                                          "enc_glue8.h", "pybuf.h", "enc_cluster.h",
                                          "enc_lloyd.h", "enc_glue_cluster.h")]
# _enc's float code must round as numba's: no fused multiply-add (GCC contracts by default
# where the target has FMA)
ENC_FLAGS = [] if sys.platform == "win32" else ["-ffp-contract=off"]
# -fwrapv: numba's int64 arithmetic wraps, C's signed overflow is undefined without it
UNIX_FLAGS = ["-O3", "-fwrapv", "-std=gnu11", "-fno-strict-aliasing"]


class OptionalBuildExt(build_ext):
    """``build_ext`` that never fails the install: a compiler error or a missing compiler
    leaves the package without its native kernels (numba serves), with a warning."""

    def build_extensions(self) -> None:
        if self.compiler.compiler_type == "unix":
            for ext in self.extensions:
                ext.extra_compile_args = [*UNIX_FLAGS, *ext.extra_compile_args]
        super().build_extensions()

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # noqa: BLE001  (no compiler: any error means "skip")
            self._skipped(exc)

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except Exception as exc:  # noqa: BLE001
            self._skipped(exc)

    @staticmethod
    def _skipped(exc: Exception) -> None:
        print(f"WARNING: bigsmall's native kernels were not built ({exc}); the numba kernels "
              "will be used", file=sys.stderr)


setup(
    ext_modules=[
        Extension(
            "bigsmall.native._kernels",
            sources=[f"{NATIVE}/_kernels.c"],
            depends=HEADERS,
            optional=True,
        ),
        Extension(  # table builders and encoder kernels (README.md: "_enc")
            "bigsmall.native._enc",
            sources=[f"{NATIVE}/_enc.c"],
            depends=ENC_HEADERS,
            extra_compile_args=ENC_FLAGS,
            optional=True,
        ),
        Extension(  # the .bsd 2.0 chunk decoders (docs/dual.md; numba: codecs/dual_trunc.py)
            "bigsmall.native._dual",
            sources=[f"{NATIVE}/_dual.c"],
            depends=[f"{NATIVE}/dual_codes_wide.h", f"{NATIVE}/dual_bins.h", f"{NATIVE}/isa.h", f"{NATIVE}/pybuf.h"],
            optional=True,
        ),
        Extension(  # the .bsd 5.0 exact chunk decoder (docs/dual.md; numba: codecs/dual_cells.py)
            "bigsmall.native._cells",
            sources=[f"{NATIVE}/_cells.c"],
            depends=[f"{NATIVE}/cells_wide.h", f"{NATIVE}/dual_bins.h", f"{NATIVE}/isa.h", f"{NATIVE}/pybuf.h"],
            optional=True,
        ),
        Extension(  # the delta codec's chunk decoder (README.md: "_delta")
            "bigsmall.native._delta",
            sources=[f"{NATIVE}/_delta.c"],
            depends=[f"{NATIVE}/delta_decode.h", f"{NATIVE}/delta_wide.h", f"{NATIVE}/isa.h", f"{NATIVE}/pybuf.h"],
            optional=True,
        ),
    ],
    cmdclass={"build_ext": OptionalBuildExt},
)
