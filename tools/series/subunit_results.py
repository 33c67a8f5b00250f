"""Per-test results of a subunit v2 stream, as one JSON object.

Run with the Python of a release's virtualenv, which has python-subunit
and testtools because stestr needs them::

    stestr last --subunit | VENV/bin/python subunit_results.py > out.json

The object maps each test id to ``[status, seconds, text]``: the status as
subunit gives it (``success``, ``fail``, ``skip``, ``xfail``,
``uxsuccess``), the test's duration (``null`` when the stream has no
timestamps) and, for a failure, its traceback, for a skip, its reason
(empty otherwise). A test reported more than once (``stestr run
--combine`` adds a second run to the last) keeps its last result.

This file is run as a script by a Python other than the runner's: it
imports nothing from the runner.
"""

import json
import sys

import subunit
import testtools

#: Statuses that are not results: a test listed, or one that never ended.
NOT_RESULTS = ('exists', 'inprogress', 'unknown', None)

#: Which details hold the text worth keeping, in order of preference.
TEXT_DETAILS = ('traceback', 'reason')


def _text(details: dict) -> str:
    for name in TEXT_DETAILS:
        if name in details:
            try:
                return details[name].as_text()
            except (UnicodeDecodeError, ValueError):
                return ''
    return ''


def read(stream) -> dict:
    results = {}

    def on_test(test: dict) -> None:
        status = test['status']
        if status in NOT_RESULTS:
            return
        start, stop = test['timestamps']
        seconds = None
        if start is not None and stop is not None:
            seconds = round((stop - start).total_seconds(), 3)
        text = '' if status in ('success', 'xfail') else _text(
            test['details'])
        results[test['id']] = [status, seconds, text]

    case = subunit.ByteStreamToStreamResult(stream,
                                            non_subunit_name='stdout')
    result = testtools.StreamToDict(on_test)
    result.startTestRun()
    try:
        case.run(result)
    finally:
        result.stopTestRun()
    return results


def main() -> int:
    json.dump(read(sys.stdin.buffer), sys.stdout)
    return 0


if __name__ == '__main__':
    sys.exit(main())
