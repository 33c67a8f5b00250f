"""How ``nova-firmware`` ends when a signal asks it to.

SIGINT (Ctrl-C), SIGTERM (a service manager, ``kill``) and SIGHUP (a
closed terminal) all end a command the same way: as an error, after the
cleanup, which no further signal interrupts. Only ``kill -9`` cannot be
handled; the records of ``nova.cmd.firmware_state`` cover it.
"""

import contextlib
import os
import signal
import threading
import typing as ty


class Interrupted(BaseException):
    """A signal asked the tool to stop.

    A ``BaseException``, as ``KeyboardInterrupt``: code that handles
    ``Exception`` (the driver's own clean-up of a failed spawn, say) lets
    it through to the tool's cleanup, which removes everything.
    """

    def __init__(self, signum: int) -> None:
        self.signal_name = signal.Signals(signum).name
        super().__init__('interrupted by %s' % self.signal_name)


class SignalGuard:
    """SIGINT, SIGTERM and SIGHUP all end a boot the same way.

    The first one raises ``Interrupted`` in the main thread, and the
    cleanup runs; every later one, and any that arrives while the cleanup
    runs (``deferred``), is only noted: interrupting the cleanup would leave
    the guest behind. A signal the tool was started with ignored (``nohup``,
    a background job of a script) stays ignored.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __init__(self, prog: str) -> None:
        self._prog = prog
        self._previous: dict[int, ty.Any] = {}
        self._deferring = False
        #: The name of the first signal received, if any.
        self.received: str | None = None

    def __enter__(self) -> 'SignalGuard':
        if threading.current_thread() is not threading.main_thread():
            # Only the main thread can handle signals.
            return self
        for signum in self.SIGNALS:
            previous = signal.getsignal(signum)
            if previous is signal.SIG_IGN:
                continue
            self._previous[signum] = previous
            signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)

    @contextlib.contextmanager
    def deferred(self) -> ty.Iterator[None]:
        """Hold signals off while the block runs."""
        self._deferring = True
        try:
            yield
        finally:
            self._deferring = False

    def _handle(self, signum: int, frame: ty.Any) -> None:
        name = signal.Signals(signum).name
        if self.received is None:
            self.received = name
            if not self._deferring:
                raise Interrupted(signum)
        # Written straight to the descriptor: the main thread may be in
        # the middle of a print to the same stream.
        message = ('%s: %s: still cleaning up; interrupting it would leave '
                   'the guest behind\n' % (self._prog, name))
        try:
            os.write(2, message.encode('utf-8', 'replace'))
        except OSError:
            pass


def interruptible(func: ty.Callable[[], ty.Any]) -> ty.Any:
    """Run ``func`` in a thread and wait for it where signals are heard.

    Python runs signal handlers in the main thread between bytecodes; a
    long libvirt call (the first probe of QEMU takes seconds) would keep
    a Ctrl-C waiting until it returns. Only for work that creates nothing
    to clean up: when interrupted, the thread is left to finish on its own.
    """
    result: dict[str, ty.Any] = {}

    def target() -> None:
        try:
            result['value'] = func()
        except BaseException as exc:
            result['error'] = exc

    thread = threading.Thread(target=target, name='nova-firmware-work',
                              daemon=True)
    thread.start()
    while thread.is_alive():
        thread.join(0.1)
    if 'error' in result:
        raise result['error']
    return result.get('value')
