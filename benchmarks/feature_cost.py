"""The feature's own cost: one request with and without stateless firmware.

The same pipeline runs for a UEFI image with ``hw_firmware_stateless=true``
and for the same image without the property, alternating in pairs, on
every side: this tree in this process, upstream Nova 34.0.0 and any
patched Nova (``benchmarks.sides``) each in a worker process of its own.
The ratio stateless / without is the feature's cost; each side's comes
from its own pairs in this one run, so each side is compared only with
itself and the two sides' guests may differ.

Stages, per side:

``query``: the API's flavor and image validation (this tree:
``compute.api.validate_flavor_image``, which reads the image with
``ImageMeta.from_dict``; upstream: ``API._validate_flavor_image_nostatus``
and ``ImageMeta.from_dict``), ``RequestSpec.from_components``,
``ResourceRequest.from_request_spec``, ``to_querystring``.

``full``: the above, then the compute side's guest config and domain XML
on real libvirt (this machine's QEMU driver embedded, TCG), through the
side's own ``LibvirtDriver`` after its own ``init_host`` (this tree:
``_get_guest_config(...).to_xml()``; upstream: ``blockinfo.get_disk_info``
and ``_get_guest_config(...).to_xml()``).

This tree against upstream is compared on the ``query`` stage only, the
one where both sides do the same work on the same input. On ``full`` they
do not: upstream's guest has many more elements (metadata, clock, CPU,
consoles, video, controllers, PCIe ports), which no configuration removes,
so that ratio would measure the guests, not the code, and is not given.
"""

import math
from urllib import parse

import benchmarks
from benchmarks import environment
from benchmarks import sides as sides_mod
from nova.compute import api as compute_api
from nova import objects
from nova.scheduler import utils as scheduler_utils
from nova.virt.libvirt import driver as libvirt_driver

NAME = 'feature'
#: The feature may add at most 5% to a request.
GOAL = 1.05
MARGIN = 0.05
#: This tree's query stage against upstream's.
GOAL_VS_UPSTREAM = 1.00
PAIRS, SECONDS = 2000, 30.0

TREE = 'this tree'

#: What each side does in the comparisons with another Nova, printed with
#: the results: (comparison, this tree, the other Nova).
SIDES = (
    ('feature: query stage',
     'compute.api.validate_flavor_image (ImageMeta.from_dict inside), '
     'RequestSpec.from_components, ResourceRequest.from_request_spec, '
     'to_querystring',
     'API._validate_flavor_image_nostatus, ImageMeta.from_dict, '
     'RequestSpec.from_components, ResourceRequest.from_request_spec, '
     'to_querystring'),
    ('feature: whole request (each side against itself only)',
     'the query stage, then _get_guest_config().to_xml() on real libvirt '
     'after init_host: 7 guest elements, explicit read-only loader',
     'the query stage, then blockinfo.get_disk_info, '
     '_get_guest_config().to_xml() on real libvirt after its init_host: '
     'its full guest, firmware autoselection'),
)


def _tree_stages(driver: libvirt_driver.LibvirtDriver, stateless: bool):
    flavor = environment.flavor()
    image = environment.image(stateless=True if stateless else None)
    instance, _spec = environment.create_server(image)

    def query():
        image_meta = compute_api.validate_flavor_image(flavor, image)
        spec = objects.RequestSpec.from_components(
            instance.uuid, image_meta, flavor)
        return scheduler_utils.ResourceRequest.from_request_spec(
            spec).to_querystring(), image_meta

    def full():
        querystring, image_meta = query()
        xml = driver._get_guest_config(instance, image_meta).to_xml()
        return querystring, xml

    return query, full


class _TreeSide:
    label = TREE
    concurrency = 'native threads (this process)'
    note = ''

    def __init__(self, driver: libvirt_driver.LibvirtDriver) -> None:
        self.stages = {'stateless': _tree_stages(driver, True),
                       'plain': _tree_stages(driver, False)}
        self.info = {}
        for variant, (_query, full) in self.stages.items():
            query, xml = full()
            self.info[variant] = {'query': query, 'xml_bytes': len(xml),
                                  'xml': xml}
        self._counts: dict = {}

    def sampler(self, variant: str, stage: str):
        func = self.stages[variant][0 if stage == 'query' else 1]
        key = (variant, stage)
        if key not in self._counts:
            self._counts[key] = benchmarks.batch_size(func)
        return lambda: benchmarks.per_call(func, self._counts[key])

    def pairer(self, stage: str):
        index = 0 if stage == 'query' else 1
        first = self.stages['stateless'][index]
        second = self.stages['plain'][index]
        count = benchmarks.batch_size(first)
        return lambda _i: benchmarks.interleaved(first, second, count)


class _OtherSide:

    def __init__(self, process: sides_mod.SideProcess) -> None:
        self.process = process
        self.label = process.side.label
        self.note = process.side.note
        self.concurrency = process.hello['concurrency']
        self.version = process.hello['version']
        self.info = process.call('pipeline', root=process.embed_root(),
                                 workdir=process.workdir)
        self._counts: dict = {}

    def _time(self, variant: str, stage: str, count: int) -> float:
        return self.process.call('time', variant=variant, stage=stage,
                                 count=count)['seconds']

    def _count(self, variant: str, stage: str) -> int:
        key = (variant, stage)
        if key not in self._counts:
            self._time(variant, stage, 1)
            single = self._time(variant, stage, 5)
            self._counts[key] = max(5, min(2000, int(0.02 / single)))
        return self._counts[key]

    def sampler(self, variant: str, stage: str):
        count = self._count(variant, stage)
        return lambda: self._time(variant, stage, count)

    def pairer(self, stage: str):
        count = self._count('stateless', stage)

        def pair(_index: int) -> tuple[float, float]:
            answer = self.process.call('pair', stage=stage, count=count)
            return answer['stateless'], answer['plain']
        return pair


def _firmware_xml(xml: str) -> str:
    """The ``<os>`` element of a domain XML, on one line."""
    start, end = xml.find('<os'), xml.find('</os>')
    if start < 0 or end < 0:
        return '?'
    return ' '.join(xml[start:end + 5].split())


def _side_figures(side, caps) -> list[benchmarks.Figure]:
    figures = []
    for stage, what in (('query', 'image to placement query'),
                        ('full', 'whole request incl. guest XML')):
        sampled = benchmarks.compare_pairs(
            side.pairer(stage), goal=GOAL, margin=MARGIN,
            max_pairs=caps[0], max_seconds=caps[1])
        detail = ''
        if stage == 'full':
            detail = 'guest XML %d bytes stateless, %d without; <os>: %s' % (
                side.info['stateless']['xml_bytes'],
                side.info['plain']['xml_bytes'],
                _firmware_xml(side.info['stateless']['xml']))
        figures.append(benchmarks.ratio_figure(
            NAME, '%s, %s: stateless / without' % (side.label, what),
            sampled, GOAL, MARGIN,
            detail='; '.join(part for part in (
                side.concurrency, side.note, detail) if part)))
        figures.append(benchmarks.difference_figure(
            NAME, '%s, %s: stateless - without, per request' % (
                side.label, what),
            benchmarks.differences(sampled), benchmarks.fmt_us,
            detail='medians: stateless %s, without %s' % (
                benchmarks.fmt_us(benchmarks.median(sampled.first)),
                benchmarks.fmt_us(benchmarks.median(sampled.second)))))
    return figures


def run(options: benchmarks.Options) -> list[benchmarks.Figure]:
    caps = options.cap(PAIRS, SECONDS)
    figures: list[benchmarks.Figure] = []
    others = []
    with environment.embedded_libvirt():
        driver = libvirt_driver.LibvirtDriver()
        driver.init_host('bench')
        tree = _TreeSide(driver)
        try:
            for side in options.sides:
                process, why = sides_mod.start(side, options.workdir)
                if process is not None:
                    try:
                        others.append(_OtherSide(process))
                        continue
                    except sides_mod.SideError as ex:
                        process.close()
                        why = str(ex)
                figures.append(benchmarks.Figure(
                    NAME, '%s: stateless / without' % side.label, '',
                    goal='<= %.2fx' % GOAL, skipped='%s: %s' % (
                        side.label, why)))
            figures += _side_figures(tree, caps)
            for other in others:
                figures += _side_figures(other, caps)
                figures.append(_define_figure(other))
            upstream = [o for o in others
                        if o.label == sides_mod.UPSTREAM_LABEL]
            if upstream:
                figures.append(_versus(tree, upstream[0], caps))
        finally:
            for other in others:
                other.process.close()
    return figures


def _define_figure(other: _OtherSide) -> benchmarks.Figure:
    """Whether this machine's libvirt takes the other Nova's guests.

    Why the boots are measured on this tree only: upstream 34.0.0 writes
    ``<os firmware='efi'>`` with loader attributes, which this machine's
    libvirt (9.0) refuses at define.
    """
    answers = other.process.call('define')
    return benchmarks.Figure(
        NAME, '%s: its UEFI guests defined on this libvirt' % other.label,
        'stateless: %s; without: %s' % (answers['stateless'],
                                        answers['plain']),
        detail='defineXML of the XML the whole request stage built, then '
               'undefine; nothing started')


def _versus(tree: _TreeSide, other: _OtherSide,
            caps) -> benchmarks.Figure:
    sampled = benchmarks.compare(
        tree.sampler('stateless', 'query'),
        other.sampler('stateless', 'query'),
        goal=GOAL_VS_UPSTREAM, margin=MARGIN, max_pairs=caps[0],
        max_seconds=caps[1])
    ours = tree.info['stateless']['query']
    theirs = other.info['stateless']['query']
    same = parse.unquote(theirs) == parse.unquote(ours)
    figure = benchmarks.ratio_figure(
        NAME, 'image to placement query, stateless: this tree / %s' %
              other.label, sampled, GOAL_VS_UPSTREAM, MARGIN,
        detail='medians: this tree %s, %s %s; %s query: %s' % (
            benchmarks.fmt_us(benchmarks.median(sampled.first)),
            other.label,
            benchmarks.fmt_us(benchmarks.median(sampled.second)),
            'the same' if same else 'a different',
            ours if same else '%s against %s' % (ours, theirs)))
    if math.isnan(sampled.center):
        figure.skipped = 'no sample'
    return figure
