"""Control plane cost of one request, here and in upstream Nova.

One request is what the control plane does with a stateless image before
anything touches a host:

1. to the placement query: ``nova.compute.api.validate_flavor_image`` (it
   reads the image dict with ``ImageMeta.from_dict`` and checks flavor and
   image together), ``RequestSpec.from_components``,
   ``ResourceRequest.from_request_spec``, ``to_querystring``;
2. the whole request: the above, then the compute side's
   ``LibvirtDriver._get_guest_config(...).to_xml()``, here on the real
   libvirt host with its capabilities cached, as on a running compute.

Upstream Nova does the same stages in its own virtualenv
(``benchmarks/upstream_pipeline.py``, on upstream's fakelibvirt, since
upstream cannot drive this machine's libvirt without a daemon); batches of
requests alternate between the two processes and the medians of the
per-request times are compared. Upstream's guest has many more devices and
its XML is larger; its firmware part asks libvirt to autoselect, so it
chooses no loader itself. Those differences are printed with the figures.

The upstream virtualenv is optional: without it only this tree is timed.
Create it with ``benchmarks/upstream-venv.sh`` (or see
``doc/source/admin/benchmarks.rst``).
"""

import json
import os
import subprocess
import typing as ty
from urllib import parse

import benchmarks
from benchmarks import environment
from nova.compute import api as compute_api
from nova import objects
from nova.scheduler import utils as scheduler_utils
from nova.virt.libvirt import driver as libvirt_driver

NAME = 'control'
DEFAULT_UPSTREAM_VENV = '/tmp/upstream-nova'
WORKER = os.path.join(os.path.dirname(__file__), 'upstream_pipeline.py')
#: Seconds upstream may take to import and build its pipeline.
UPSTREAM_START_TIMEOUT = 120


def upstream_python(venv: ty.Optional[str]) -> ty.Optional[str]:
    """The Python of the upstream virtualenv, or None when there is none."""
    if not venv:
        return None
    python = os.path.join(venv, 'bin', 'python')
    return python if os.access(python, os.X_OK) else None


class Upstream:
    """Upstream's pipeline in a worker process fed batch sizes on stdin."""

    def __init__(self, python: str, workdir: str) -> None:
        env = {k: v for k, v in os.environ.items()
               if k not in ('PYTHONPATH', 'VIRTUAL_ENV')}
        self._stderr = open(os.path.join(workdir, 'upstream.log'), 'w')
        self._proc = subprocess.Popen(
            [python, WORKER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=self._stderr, cwd=workdir, env=env, text=True)
        self.info = self._read()

    def _read(self) -> dict:
        line = self._proc.stdout.readline()
        if not line:
            raise RuntimeError('upstream worker exited (see %s)' %
                               self._stderr.name)
        answer = json.loads(line)
        if 'error' in answer:
            raise RuntimeError(answer['error'])
        return answer

    def time(self, count: int) -> dict:
        self._proc.stdin.write('%d\n' % count)
        self._proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        try:
            self._proc.stdin.close()
            self._proc.wait(timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            self._proc.kill()
            self._proc.wait()
        self._stderr.close()


def _per_request(func: ty.Callable[[], ty.Any], count: int) -> float:
    with benchmarks.Stopwatch() as sw:
        for _ in range(count):
            func()
    return sw.seconds / count


def _ours(driver: libvirt_driver.LibvirtDriver):
    flavor = environment.flavor()
    image = environment.image(stateless=True)
    instance, _spec = environment.create_server(image)

    def to_query():
        image_meta = compute_api.validate_flavor_image(flavor, image)
        spec = objects.RequestSpec.from_components(
            instance.uuid, image_meta, flavor)
        query = scheduler_utils.ResourceRequest.from_request_spec(
            spec).to_querystring()
        return query, image_meta

    def full():
        query, image_meta = to_query()
        xml = driver._get_guest_config(instance, image_meta).to_xml()
        return query, xml

    return to_query, full


def _start_upstream(options: benchmarks.Options
                    ) -> tuple[ty.Optional[Upstream], str]:
    if options.upstream_python is None:
        return None, ('no virtualenv with upstream Nova (create one with '
                      'benchmarks/upstream-venv.sh or pass '
                      '--upstream-venv)')
    try:
        return Upstream(options.upstream_python, options.workdir), ''
    except (OSError, RuntimeError, ValueError) as ex:
        return None, ' '.join(str(ex).split())[:200]


def run(options: benchmarks.Options) -> list[benchmarks.Figure]:
    count = options.requests_per_batch
    with environment.embedded_libvirt():
        driver = libvirt_driver.LibvirtDriver()
        driver.init_host('bench')
        to_query, full = _ours(driver)
        query, xml = full()
        upstream, why_not = _start_upstream(options)
        ours_query, ours_full, up_query, up_full = [], [], [], []
        try:
            for i in range(options.runs):
                ours_query.append(_per_request(to_query, count))
                ours_full.append(_per_request(full, count))
                if upstream is not None:
                    answer = upstream.time(count)
                    up_query.append(answer['to_query'])
                    up_full.append(answer['full'])
        finally:
            if upstream is not None:
                upstream.close()

    batches = '%d alternating batches of %d requests' % (options.runs, count)
    figures = [
        benchmarks.Figure(
            NAME, 'image dict to placement query, this tree (median)',
            benchmarks.fmt_us(benchmarks.median(ours_query)),
            detail='%s; query: %s' % (batches, query)),
        benchmarks.Figure(
            NAME, 'whole request incl. guest XML, this tree (median)',
            benchmarks.fmt_us(benchmarks.median(ours_full)),
            detail='guest XML %d bytes, real libvirt host, capabilities '
                   'cached' % len(xml)),
    ]
    if upstream is None:
        figures.append(benchmarks.Figure(
            NAME, 'whole request: this tree / upstream Nova', '',
            goal='< 1.00x', skipped='upstream: not available (%s)' %
                                    why_not))
        return figures

    query_ratio = benchmarks.median(ours_query) / benchmarks.median(up_query)
    full_ratio = benchmarks.median(ours_full) / benchmarks.median(up_full)
    info = upstream.info
    same_query = ('the same query, percent-encoded' if
                  parse.unquote(info['query']) == query else
                  'upstream query: %s' % info['query'])
    figures += [
        benchmarks.Figure(
            NAME, 'image dict to placement query, upstream Nova %s '
                  '(median)' % info['version'],
            benchmarks.fmt_us(benchmarks.median(up_query)),
            detail=same_query),
        benchmarks.Figure(
            NAME, 'whole request incl. guest XML, upstream Nova (median)',
            benchmarks.fmt_us(benchmarks.median(up_full)),
            detail='guest XML %d bytes, upstream fakelibvirt, firmware '
                   'autoselected (<os firmware="efi">)' % info['xml_bytes']),
        benchmarks.Figure(
            NAME, 'image dict to placement query: this tree / upstream',
            benchmarks.fmt_ratio(query_ratio), goal='< 1.00x',
            passed=query_ratio < 1.0),
        benchmarks.Figure(
            NAME, 'whole request: this tree / upstream',
            benchmarks.fmt_ratio(full_ratio), goal='< 1.00x',
            passed=full_ratio < 1.0),
    ]
    return figures
