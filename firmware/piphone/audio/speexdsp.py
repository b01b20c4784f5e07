"""speexdsp's echo canceller and preprocessor through ctypes, on Debian's libspeexdsp1.

The fallback processing backend (processing.py) where WebRTC's has no wheel (32-bit ARM), and
the echo bench's reference. Written by hand because the Python bindings on the package index
(``speexdsp`` 0.1.1, 2018) ship no wheels and build with SWIG and a compiler, which a Pi must not
need; Debian's libspeexdsp1 (BSD-3-Clause, ~100 kB, armhf/arm64/amd64) is one apt package, and the
few calls below are all piphone uses of it. Loaded only when a stage asks for it.

speexdsp has no delay estimator: its adaptive filter must span the whole echo path, from the
reference as handed over to the end of the room's tail (``tail_ms``), so a longer delay costs a
longer filter (CPU grows with it) and a slower convergence.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading

import numpy as np

LIBRARY = "speexdsp"  # libspeexdsp.so.1, Debian's libspeexdsp1

# speex_echo.h and speex_preprocess.h
_ECHO_SET_SAMPLING_RATE = 24
_PP_SET_DENOISE = 0
_PP_SET_AGC = 2
_PP_SET_AGC_LEVEL = 6
_PP_SET_NOISE_SUPPRESS = 18
_PP_SET_ECHO_STATE = 24
_PP_SET_AGC_MAX_GAIN = 30

_lib: ctypes.CDLL | None = None
_lib_lock = threading.Lock()


class SpeexUnavailable(RuntimeError):
    """libspeexdsp cannot be loaded (Debian: ``apt-get install libspeexdsp1``)."""


def library() -> ctypes.CDLL:
    """libspeexdsp, loaded once, with the prototypes piphone calls."""
    global _lib
    with _lib_lock:
        if _lib is not None:
            return _lib
        path = ctypes.util.find_library(LIBRARY) or "libspeexdsp.so.1"
        try:
            lib = ctypes.CDLL(path)
        except OSError as err:
            raise SpeexUnavailable(f"cannot load libspeexdsp ({err}); on Debian or Raspberry "
                                   "Pi OS: apt-get install libspeexdsp1") from err
        p, i, i16 = ctypes.c_void_p, ctypes.c_int, ctypes.POINTER(ctypes.c_int16)
        lib.speex_echo_state_init.argtypes, lib.speex_echo_state_init.restype = [i, i], p
        lib.speex_echo_state_destroy.argtypes, lib.speex_echo_state_destroy.restype = [p], None
        lib.speex_echo_state_reset.argtypes, lib.speex_echo_state_reset.restype = [p], None
        lib.speex_echo_cancellation.argtypes = [p, i16, i16, i16]
        lib.speex_echo_cancellation.restype = None
        lib.speex_echo_ctl.argtypes, lib.speex_echo_ctl.restype = [p, i, p], i
        lib.speex_preprocess_state_init.argtypes = [i, i]
        lib.speex_preprocess_state_init.restype = p
        lib.speex_preprocess_state_destroy.argtypes = [p]
        lib.speex_preprocess_state_destroy.restype = None
        lib.speex_preprocess_run.argtypes, lib.speex_preprocess_run.restype = [p, i16], i
        lib.speex_preprocess_ctl.argtypes, lib.speex_preprocess_ctl.restype = [p, i, p], i
        _lib = lib
        return lib


def _samples(block: np.ndarray) -> ctypes._Pointer[ctypes.c_int16]:
    return block.ctypes.data_as(ctypes.POINTER(ctypes.c_int16))


class SpeexProcessor:
    """Echo cancellation (MDF), noise suppression and AGC on mono int16 frames of
    ``frame`` samples at ``rate``. Not thread-safe: one capture thread calls it."""

    def __init__(self, *, rate: int, frame: int, echo_cancellation: bool,
                 noise_suppression: bool, auto_gain: bool, tail_ms: int = 300,
                 noise_suppress_db: int = -15) -> None:
        self._lib = lib = library()
        self.rate, self.frame = rate, frame
        self._echo = None
        self._pp = None
        if echo_cancellation:
            self._echo = lib.speex_echo_state_init(frame, rate * tail_ms // 1000)
            lib.speex_echo_ctl(self._echo, _ECHO_SET_SAMPLING_RATE,
                               ctypes.byref(ctypes.c_int(rate)))
        if echo_cancellation or noise_suppression or auto_gain:
            # The preprocessor also removes the residual echo the filter leaves (its echo
            # state), which is half of speex's cancellation.
            self._pp = pp = lib.speex_preprocess_state_init(frame, rate)
            self._ctl(_PP_SET_DENOISE, ctypes.c_int(int(noise_suppression)))
            self._ctl(_PP_SET_NOISE_SUPPRESS, ctypes.c_int(noise_suppress_db))
            self._ctl(_PP_SET_AGC, ctypes.c_int(int(auto_gain)))
            if auto_gain:
                self._ctl(_PP_SET_AGC_LEVEL, ctypes.c_float(8000.0))
                self._ctl(_PP_SET_AGC_MAX_GAIN, ctypes.c_int(20))
            if self._echo is not None:
                lib.speex_preprocess_ctl(pp, _PP_SET_ECHO_STATE, self._echo)
        self._out = np.zeros(frame, np.int16)

    def _ctl(self, request: int, value: ctypes.c_int | ctypes.c_float) -> None:
        self._lib.speex_preprocess_ctl(self._pp, request, ctypes.byref(value))

    def process(self, near: np.ndarray, far: np.ndarray | None) -> np.ndarray:
        """One frame of microphone (``near``) and of what played (``far``) -> the cleaned
        microphone frame (a new array)."""
        near = np.ascontiguousarray(near, np.int16)
        if self._echo is not None:
            far = np.ascontiguousarray(far if far is not None else np.zeros_like(near),
                                       np.int16)
            out = np.empty_like(near)
            self._lib.speex_echo_cancellation(self._echo, _samples(near), _samples(far),
                                              _samples(out))
        else:
            out = near.copy()
        if self._pp is not None:
            self._lib.speex_preprocess_run(self._pp, _samples(out))
        return out

    def reset(self) -> None:
        if self._echo is not None:
            self._lib.speex_echo_state_reset(self._echo)

    def close(self) -> None:
        """Free the C states; idempotent."""
        if self._pp is not None:
            self._lib.speex_preprocess_state_destroy(self._pp)
            self._pp = None
        if self._echo is not None:
            self._lib.speex_echo_state_destroy(self._echo)
            self._echo = None

    def __del__(self) -> None:
        self.close()
