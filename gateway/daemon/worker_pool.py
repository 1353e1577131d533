"""A process pool without multiprocessing: child interpreters fed pickled calls over pipes."""

from __future__ import annotations

import contextlib
import os
import pickle
import queue
import struct
import subprocess
import sys
import threading
import traceback
from collections.abc import Callable
from concurrent.futures import Executor, Future
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

T = TypeVar("T")
_LENGTH = struct.Struct("!Q")
# The directory that holds the gateway package, for the child's first import; the rest of
# the parent's sys.path follows as the first message (calls may name modules found there).
_ROOT = str(Path(__file__).resolve().parents[2])


def _broken(message: str) -> Exception:
    # Imported here: concurrent.futures.process imports multiprocessing, which a child of
    # this pool never needs.
    from concurrent.futures.process import BrokenProcessPool

    return BrokenProcessPool(message)


class RemoteError(Exception):
    """An exception raised in a worker that could not be pickled back: its text only."""


def _send(pipe: BinaryIO, value: Any) -> None:
    data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    pipe.write(_LENGTH.pack(len(data)))
    pipe.write(data)
    pipe.flush()


def _receive(pipe: BinaryIO) -> Any:
    head = pipe.read(_LENGTH.size)
    if len(head) < _LENGTH.size:
        raise EOFError
    size: int = _LENGTH.unpack(head)[0]
    data = pipe.read(size)
    if len(data) < size:
        raise EOFError
    return pickle.loads(data)


class _Call:
    __slots__ = ("args", "deadline_s", "function", "future", "kwargs")

    def __init__(self, future: Future[Any], function: Callable[..., Any], args: tuple[Any, ...],
                 kwargs: dict[str, Any], deadline_s: float | None = None) -> None:
        self.future, self.function, self.args, self.kwargs = future, function, args, kwargs
        self.deadline_s = deadline_s


class WorkerPool(Executor):
    """WORKERS child interpreters, each running INITIALIZER(*INITARGS) first, at NICENESS
    (added to the parent's scheduling priority: higher is lower priority).

    Used like ProcessPoolExecutor (`run_in_executor`, `shutdown`, BrokenProcessPool when a
    worker dies), but spawned with subprocess: multiprocessing's spawn start method also
    starts its resource tracker, a third interpreter (13 MB) that only guards named
    semaphores, which plain pipes do not need. A child also imports only what its calls do,
    not the parent's main module.
    """

    def __init__(self, workers: int, initializer: Callable[..., Any] | None = None,
                 initargs: tuple[Any, ...] = (), niceness: int = 0) -> None:
        self._calls: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._broken: str | None = None
        self._shut = False
        self._processes: list[subprocess.Popen[bytes]] = []
        self._threads: list[threading.Thread] = []
        for n in range(workers):
            process, requests, replies = _start_child()
            self._processes.append(process)
            thread = threading.Thread(target=self._serve, name=f"worker-pool-{n}", daemon=True,
                                      args=(process, requests, replies,
                                            (initializer, initargs, niceness)))
            thread.start()
            self._threads.append(thread)

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        return self.submit_within(None, fn, *args, **kwargs)

    def submit_within(self, deadline_s: float | None, fn: Callable[..., T], /, *args: Any,
                      **kwargs: Any) -> Future[T]:
        """As submit; a worker still on the call DEADLINE_S after it began is killed (the
        call and the pool then fail with BrokenProcessPool, as when a worker dies)."""
        with self._lock:
            if self._broken is not None:
                raise _broken(self._broken)
            if self._shut:
                raise RuntimeError("cannot schedule new futures after shutdown")
            future: Future[T] = Future()
            self._calls.put(_Call(future, fn, args, kwargs, deadline_s))
            return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            self._shut = True
            if cancel_futures:
                self._fail_waiting(None)
            for _ in self._threads:
                self._calls.put(None)
        if wait:
            for thread in self._threads:
                thread.join()

    def _fail_waiting(self, error: BaseException | None) -> None:
        """Cancel (ERROR None) or fail with ERROR every call no worker has taken yet."""
        while True:
            try:
                call = self._calls.get_nowait()
            except queue.Empty:
                return
            if call is None:
                self._calls.put(None)  # a thread's stop signal: keep it, after the calls
                return
            if error is None:
                call.future.cancel()
            elif call.future.set_running_or_notify_cancel():
                call.future.set_exception(error)

    def _serve(self, process: subprocess.Popen[bytes], requests: BinaryIO, replies: BinaryIO,
               start: tuple[Callable[..., Any] | None, tuple[Any, ...], int]) -> None:
        """One worker's thread: hand it calls one at a time until shutdown or its death."""
        try:
            _send(requests, sys.path)
            _send(requests, start)
            while (call := self._calls.get()) is not None:
                if not call.future.set_running_or_notify_cancel():
                    continue
                overdue = (threading.Timer(call.deadline_s, process.kill)
                           if call.deadline_s is not None else None)
                if overdue is not None:
                    overdue.daemon = True
                    overdue.start()
                try:
                    _send(requests, (call.function, call.args, call.kwargs))
                    ok, value = _receive(replies)
                except (OSError, EOFError) as error:
                    cause: BaseException = error
                    if overdue is not None and overdue.finished.is_set():
                        cause = TimeoutError(f"the call ran past its deadline of "
                                             f"{call.deadline_s:g} s: the worker was killed")
                    self._died(process, call, cause)
                    return
                except BaseException as error:  # the call or its result did not pickle
                    call.future.set_exception(error)
                    continue
                finally:
                    if overdue is not None:
                        overdue.cancel()
                if ok:
                    call.future.set_result(value)
                else:
                    # Where in the worker it was raised, as ProcessPoolExecutor shows it.
                    text = getattr(value, "remote_traceback", None)
                    if text and value.__cause__ is None:
                        value.__cause__ = RemoteError(text)
                    call.future.set_exception(value)
        except (OSError, EOFError) as error:
            self._died(process, None, error)
        finally:
            for pipe in (requests, replies):
                pipe.close()  # the child reads end-of-file and exits
            process.wait()

    def _died(self, process: subprocess.Popen[bytes], call: _Call | None,
              error: BaseException) -> None:
        code = process.wait()
        broken = _broken(f"a worker process ended abruptly (exit code {code})")
        broken.__cause__ = error
        with self._lock:
            self._broken = str(broken)
            if call is not None:
                call.future.set_exception(broken)
            # Calls no worker had begun fail too, without a cause: none of them broke it.
            self._fail_waiting(_broken(f"the pool broke before this call began: {broken}"))
            # The other workers finish what they hold, then stop: the pool is done.
            for _ in self._threads:
                self._calls.put(None)


def _start_child() -> tuple[subprocess.Popen[bytes], BinaryIO, BinaryIO]:
    """A child interpreter serving calls on two pipes; its stdout and stderr are ours."""
    request_read, request_write = os.pipe()
    reply_read, reply_write = os.pipe()
    code = (f"import sys; sys.path.insert(0, {_ROOT!r}); "
            f"from gateway.daemon.worker_pool import serve; serve({request_read}, {reply_write})")
    try:
        process = subprocess.Popen(
            [sys.executable, *subprocess._args_from_interpreter_flags(), "-c", code],  # type: ignore[attr-defined]
            stdin=subprocess.DEVNULL, pass_fds=(request_read, reply_write))
    finally:
        os.close(request_read)
        os.close(reply_write)
    return process, os.fdopen(request_write, "wb"), os.fdopen(reply_read, "rb")


def serve(requests_fd: int, replies_fd: int) -> None:
    """The child's loop: the initializer, then one call per request until end-of-file."""
    with os.fdopen(requests_fd, "rb") as requests, os.fdopen(replies_fd, "wb") as replies:
        sys.path[:] = _receive(requests)
        initializer, initargs, niceness = _receive(requests)
        if niceness:
            # Not allowed (a seccomp filter, say): the worker runs at the parent's priority.
            with contextlib.suppress(PermissionError):
                os.nice(niceness)
        if initializer is not None:
            initializer(*initargs)
        while True:
            try:
                function, args, kwargs = _receive(requests)
            except EOFError:
                return
            try:
                reply: tuple[bool, Any] = (True, function(*args, **kwargs))
            except BaseException as error:  # handed to the caller, as a pool does
                # An attribute, not __cause__: pickle keeps an exception's __dict__ only.
                error.remote_traceback = "".join(traceback.format_exception(error))  # type: ignore[attr-defined]
                reply = (False, error)
            try:
                _send(replies, reply)
            except BrokenPipeError:  # the parent is gone: nobody waits for this result
                return
            except (pickle.PicklingError, TypeError, AttributeError) as error:
                # The result or the exception does not pickle: its text does.
                failed = error if reply[0] else reply[1]
                _send(replies, (False, RemoteError("".join(traceback.format_exception(failed)))))
