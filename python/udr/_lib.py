"""Loading the Swift library (libudr_python.so) and calling its C functions."""

from __future__ import annotations

import ctypes
import importlib.util
import json
import os
import queue
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import errors


class ArrowArrayStream(ctypes.Structure):
    """The Arrow C stream interface's struct (the caller owns it)."""

    _fields_ = [
        ("get_schema", ctypes.c_void_p),
        ("get_next", ctypes.c_void_p),
        ("get_last_error", ctypes.c_void_p),
        ("release", ctypes.c_void_p),
        ("private_data", ctypes.c_void_p),
    ]


def _library_path() -> str:
    """UDR_LIBRARY, else the library shipped in this package."""
    explicit = os.environ.get("UDR_LIBRARY")
    if explicit:
        if not Path(explicit).is_file():
            raise errors.RuntimeMissingError(f"UDR_LIBRARY points at {explicit}, which does not exist")
        return explicit
    shipped = Path(__file__).with_name("libudr_python.so")
    if shipped.is_file():
        return str(shipped)
    raise errors.RuntimeMissingError(
        "the UDR library is not installed with this package; build it with `make python`, or set UDR_LIBRARY to a libudr_python.so"
    )


def _use_installed_duckdb() -> None:
    """One DuckDB in the process: the duckdb package's, when it is 1.5.5."""
    if os.environ.get("UDR_DUCKDB_LIBRARY"):
        return
    try:
        spec = importlib.util.find_spec("_duckdb") or importlib.util.find_spec("duckdb._duckdb")
    except ModuleNotFoundError:
        return
    if spec is None or spec.origin is None:
        return
    try:
        from importlib.metadata import version

        if version("duckdb") != "1.5.5":
            return
    except Exception:
        return
    os.environ["UDR_DUCKDB_LIBRARY"] = spec.origin


_lib: ctypes.CDLL | None = None

_char_pp = ctypes.POINTER(ctypes.c_char_p)


def lib() -> ctypes.CDLL:
    """The library, loaded and its functions typed on first use."""
    global _lib
    if _lib is not None:
        return _lib
    _use_installed_duckdb()
    os.environ.setdefault("SWIFT_BACKTRACE", "enable=no")
    loaded = ctypes.CDLL(_library_path())
    err = ctypes.POINTER(ctypes.c_void_p)
    loaded.udr_free.argtypes = [ctypes.c_void_p]
    loaded.udr_free.restype = None
    loaded.udr_version.restype = ctypes.c_void_p
    loaded.udr_open.argtypes = [ctypes.c_char_p, ctypes.c_int32, ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p), err]
    loaded.udr_clone.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p), err, err]
    loaded.udr_close.argtypes = [ctypes.c_void_p]
    loaded.udr_close.restype = None
    loaded.udr_query.argtypes = [
        ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p, ctypes.POINTER(ArrowArrayStream), err, err,
    ]
    loaded.udr_cancel_new.restype = ctypes.c_void_p
    loaded.udr_cancel.argtypes = [ctypes.c_void_p]
    loaded.udr_cancel.restype = None
    loaded.udr_cancel_free.argtypes = [ctypes.c_void_p]
    loaded.udr_cancel_free.restype = None
    loaded.udr_write.argtypes = [
        ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ArrowArrayStream), ctypes.c_char_p, err, err,
    ]
    loaded.udr_sql.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p, err, err]
    loaded.udr_call.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p, err, err]
    for name in ("udr_open", "udr_clone", "udr_query", "udr_write", "udr_sql", "udr_call"):
        getattr(loaded, name).restype = ctypes.c_int32
    _lib = loaded
    return loaded


def take_string(pointer: ctypes.c_void_p) -> str:
    """A string the library handed out, freed once read."""
    if not pointer.value:
        return ""
    try:
        return ctypes.string_at(pointer.value).decode("utf-8")
    finally:
        lib().udr_free(pointer)


def check(status: int, error: ctypes.c_void_p) -> None:
    """Raises the library's error, as the exception of its code."""
    if status == 0:
        return
    text = take_string(error)
    try:
        payload = json.loads(text)
    except ValueError:
        payload = {"code": "runtime", "message": text}
    raise errors.from_code(payload.get("code", "runtime"), payload.get("message", text))


def encode(options: dict[str, Any] | None) -> bytes:
    """Options as the JSON text the library reads, without the unset ones."""
    return json.dumps({k: v for k, v in (options or {}).items() if v is not None}).encode("utf-8")


class _Worker:
    """The thread that runs the main thread's interruptible calls (one at a
    time: the main thread waits for each). One thread for the process's
    life: starting a thread per call cost a tenth of a millisecond."""

    def __init__(self) -> None:
        self._calls: queue.SimpleQueue[tuple[Callable[[], Any], list[Any], threading.Lock]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._guard = threading.Lock()

    def run(self, call: Callable[[], Any], on_interrupt: Callable[[], None]) -> Any:
        with self._guard:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._serve, name="udr-calls", daemon=True)
                self._thread.start()
        outcome: list[Any] = []
        done = threading.Lock()
        done.acquire()
        self._calls.put((call, outcome, done))
        try:
            # Timed waits: a signal the kernel gave another thread (DuckDB's)
            # is still seen here within a tenth of a second.
            while not done.acquire(timeout=0.1):
                pass
        except KeyboardInterrupt:
            on_interrupt()
            if not outcome:  # (else the wait had ended when the signal came)
                done.acquire()
            raise
        failed, value = outcome[0]
        if failed:
            raise value
        return value

    def _serve(self) -> None:
        while True:
            call, outcome, done = self._calls.get()
            try:
                outcome.append((False, call()))
            except BaseException as error:  # noqa: BLE001 - raised in the caller's thread
                outcome.append((True, error))
            finally:
                done.release()


_worker = _Worker()


class Cancel:
    """A handle the library's calls take to be interrupted by (Ctrl-C)."""

    def __init__(self) -> None:
        self.pointer = ctypes.c_void_p(lib().udr_cancel_new())

    def fire(self) -> None:
        lib().udr_cancel(self.pointer)

    def close(self) -> None:
        if self.pointer.value:
            lib().udr_cancel_free(self.pointer)
            self.pointer = ctypes.c_void_p()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


def interruptible(call: Callable[[ctypes.c_void_p], Any], cancel: Cancel | None = None) -> Any:
    """Runs a library call that takes a cancel handle (`cancel`, or one of
    its own). In the main thread (where Python delivers Ctrl-C) the call
    runs in a worker while the main thread waits, so that a
    KeyboardInterrupt cancels it: the library interrupts the query, the
    worker ends it, and the KeyboardInterrupt goes on. Other threads call
    directly."""
    own = cancel is None
    handle = cancel or Cancel()
    try:
        if threading.current_thread() is not threading.main_thread():
            return call(handle.pointer)
        return _worker.run(lambda: call(handle.pointer), handle.fire)
    finally:
        if own:
            handle.close()


def discard(stream: ArrowArrayStream, *strings: ctypes.c_void_p) -> None:
    """Frees what an abandoned call may have handed out."""
    for pointer in strings:
        if pointer.value:
            lib().udr_free(pointer)
    if stream.release:
        ctypes.CFUNCTYPE(None, ctypes.POINTER(ArrowArrayStream))(stream.release)(ctypes.byref(stream))
