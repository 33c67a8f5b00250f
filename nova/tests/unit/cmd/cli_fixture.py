"""Run ``nova-firmware`` in the test process, as a user would run it.

``NovaFirmwareFixture.run(*argv)`` calls ``nova.cmd.firmware.main`` with
``argv`` and returns the exit status and what it printed on stdout and
stderr. ``main`` sets up process-wide state as the console script does
(oslo.log replaces the root logger's handlers and sets logger levels and
``sys.excepthook``; the libvirt logging variables go into the
environment); the fixture puts all of it back afterwards, so the next test
sees the process as it was.
"""

import dataclasses
import io
import logging
import os
import sys

import fixtures

from nova.cmd import firmware


@dataclasses.dataclass(frozen=True)
class CLIResult:
    """What one run of the command showed."""

    code: int
    stdout: str
    stderr: str

    @property
    def stderr_lines(self) -> list[str]:
        return self.stderr.splitlines()


def _logger_levels() -> dict[str, int]:
    return {name: logger.level
            for name, logger in logging.Logger.manager.loggerDict.items()
            if isinstance(logger, logging.Logger)}


class NovaFirmwareFixture(fixtures.Fixture):
    """Run ``nova-firmware`` in-process and undo its process-wide setup."""

    def _setUp(self) -> None:
        #: The libvirt logging variables as the last run left them.
        self.environment: dict[str, str] = {}
        for name in firmware.LIBVIRT_LOG_ENVIRONMENT:
            self.useFixture(fixtures.EnvironmentVariable(name))
        root = logging.getLogger()
        self.addCleanup(self._restore_logging, list(root.handlers),
                        root.level, _logger_levels())
        self.addCleanup(setattr, sys, 'excepthook', sys.excepthook)

    @staticmethod
    def _restore_logging(handlers: list, root_level: int,
                         levels: dict[str, int]) -> None:
        root = logging.getLogger()
        root.handlers[:] = handlers
        root.setLevel(root_level)
        for name, logger in logging.Logger.manager.loggerDict.items():
            if isinstance(logger, logging.Logger):
                logger.setLevel(levels.get(name, logging.NOTSET))

    def run(self, *argv: str) -> CLIResult:
        stdout, stderr = io.StringIO(), io.StringIO()
        with fixtures.MonkeyPatch('sys.stdout', stdout), \
                fixtures.MonkeyPatch('sys.stderr', stderr):
            code = firmware.main(list(argv))
        self.environment = {name: os.environ[name]
                            for name in firmware.LIBVIRT_LOG_ENVIRONMENT
                            if name in os.environ}
        return CLIResult(code, stdout.getvalue(), stderr.getvalue())
