"""Tests of how ``nova-firmware`` takes signals: real ones, sent to the
test process itself.
"""

import os
import signal
import threading

from nova.cmd import firmware_signals as fs
from nova import test


class SignalGuardTestCase(test.NoDBTestCase):
    """Real signals, sent to this process."""

    def test_each_signal_interrupts_once(self):
        signums = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
        # A run started in the background inherits SIGINT ignored, and one
        # under nohup SIGHUP, which the guard rightly keeps ignored: start
        # from the default dispositions.
        for signum in signums:
            previous = signal.signal(signum, signal.default_int_handler
                                     if signum == signal.SIGINT
                                     else signal.SIG_DFL)
            self.addCleanup(signal.signal, signum, previous)
        for signum in signums:
            with fs.SignalGuard('nova-firmware boot') as guard:
                ex = self.assertRaises(fs.Interrupted, os.kill, os.getpid(),
                                       signum)
                self.assertEqual('interrupted by %s' % signum.name, str(ex))
                # A second one is only noted: the cleanup must finish.
                os.kill(os.getpid(), signal.SIGINT)
            self.assertEqual(signum.name, guard.received)

    def test_signals_wait_for_the_cleanup(self):
        with fs.SignalGuard('nova-firmware boot') as guard:
            with guard.deferred():
                os.kill(os.getpid(), signal.SIGTERM)
            self.assertEqual('SIGTERM', guard.received)

    def test_handlers_are_put_back_and_ignored_signals_stay_ignored(self):
        previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
        self.addCleanup(signal.signal, signal.SIGHUP, previous)
        handler = signal.getsignal(signal.SIGTERM)
        with fs.SignalGuard('nova-firmware boot') as guard:
            os.kill(os.getpid(), signal.SIGHUP)
        self.assertIsNone(guard.received)
        self.assertIs(handler, signal.getsignal(signal.SIGTERM))

    def test_interruptible_returns_and_raises_what_the_work_does(self):
        self.assertEqual(3, fs.interruptible(lambda: 3))
        self.assertRaises(ZeroDivisionError, fs.interruptible, lambda: 1 / 0)

    def test_interruptible_wait_is_interrupted(self):
        # The work blocks (as a libvirt call can) until the test lets go.
        release = threading.Event()
        self.addCleanup(release.set)
        timer = threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGTERM))
        with fs.SignalGuard('nova-firmware boot'):
            timer.start()
            self.assertRaises(fs.Interrupted, fs.interruptible, release.wait)
