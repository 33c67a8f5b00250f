"""``nova-firmware boot``: one guest through the whole flow, on real parts.

The stages follow a request through a cloud: placement is up, the compute
service registers its node with the traits its driver reports, the API
validates the request, the scheduler asks placement for candidates and
claims one, the compute spawns the guest. Then the tool looks at the guest
from the host, without trusting the XML Nova wrote: the firmware's own
output on the serial console, the live ``<os>`` element, the flash drives
QEMU was given and the NVRAM files libvirt keeps
(:mod:`nova.virt.libvirt.boot_evidence`), and judges whether they show the
firmware that was asked for. Last, the guest is deleted as the compute
service deletes one, and the tool checks that nothing is left.

Every stage is the services' own code; nothing here decides what the
services decide.
"""

import argparse
import contextlib
import dataclasses
import fcntl
import hashlib
import math
import os
import shlex
import signal
import tempfile
import time
import typing as ty

from keystoneauth1 import adapter as ks_adapter
import os_resource_classes as orc
from oslo_log import log as logging
from oslo_utils import uuidutils

from nova.cmd import firmware_cleanup
from nova.cmd import firmware_common as common
from nova.cmd import firmware_placement as placement
from nova.cmd import firmware_report
from nova.cmd import firmware_signals
from nova.cmd import firmware_state as state
from nova.compute import api as compute_api
from nova.compute import manager as compute_manager
import nova.conf
from nova import exception
from nova import objects
from nova.objects import fields
from nova.objects import instance as instance_obj
from nova.scheduler.client import report
from nova.scheduler import manager as scheduler_manager
from nova.scheduler import utils as scheduler_utils
from nova.virt import hardware
from nova.virt.libvirt import boot_evidence
from nova.virt.libvirt import config as vconfig
from nova.virt.libvirt import driver as libvirt_driver
from nova.virt.libvirt import guest as libvirt_guest
from nova.virt.libvirt import host as libvirt_host

CONF = nova.conf.CONF
LOG = logging.getLogger(__name__)

STAGES = ('placement', 'compute', 'api', 'scheduler', 'spawn', 'firmware',
          'evidence', 'cleanup')

#: What a request asks for, as the verdict names it.
FIRMWARE_STATELESS = 'stateless UEFI'
FIRMWARE_STATEFUL = 'stateful UEFI'
FIRMWARE_BIOS = 'BIOS'


# --- the verdict -------------------------------------------------------------

def expected_firmware(image_meta: 'objects.ImageMeta') -> str:
    """The firmware a request asks for, read as the driver reads it."""
    if hardware.get_firmware_type(image_meta) != fields.FirmwareType.UEFI:
        return FIRMWARE_BIOS
    if hardware.get_stateless_firmware_constraint(image_meta):
        return FIRMWARE_STATELESS
    return FIRMWARE_STATEFUL


@dataclasses.dataclass
class Evidence:
    """How a running guest was booted, as seen from the host."""

    #: What the firmware printed on the serial console; None if nothing.
    marker: str | None
    #: The live ``<loader>``: path and ``stateless`` attribute.
    loader: str | None
    loader_stateless: bool | None
    #: The live ``<nvram>`` path, if the domain has one.
    nvram_element: str | None
    #: QEMU's command line as libvirt logged it; empty if not found.
    command_line: str
    #: The flash drives on that command line.
    pflash: list[boot_evidence.PflashDrive] | None
    #: The variable store files libvirt keeps for the domain.
    nvram_files: list[str]


def _drives(drives: list[boot_evidence.PflashDrive]) -> str:
    if not drives:
        return 'no pflash drive'
    return ', '.join('pflash%d %s (%s)' % (
        d.unit, d.filename, 'read-only' if d.read_only else 'writable')
        for d in drives)


def _stateless_problems(evidence: Evidence) -> list[str]:
    problems = []
    if not evidence.loader_stateless:
        problems.append("the live <loader> does not say stateless='yes'")
    if evidence.nvram_element:
        problems.append('the live <os> has an <nvram> (%s)' %
                        evidence.nvram_element)
    drives = evidence.pflash
    if drives is not None and (len(drives) != 1 or
                               not drives[0].read_only):
        problems.append('QEMU was given %s; a stateless guest gets one '
                        'read-only pflash' % _drives(drives))
    if evidence.nvram_files:
        problems.append('NVRAM exists for the domain: %s' %
                        ', '.join(evidence.nvram_files))
    return problems


def _stateful_problems(evidence: Evidence) -> list[str]:
    problems = []
    drives = evidence.pflash
    if drives is not None and (len(drives) != 2 or not drives[0].read_only
                               or drives[1].read_only):
        problems.append('QEMU was given %s; a stateful guest gets a '
                        'read-only code pflash and a writable variable '
                        'store' % _drives(drives))
    if not evidence.nvram_files:
        problems.append('no NVRAM file exists for the domain')
    return problems


def _bios_problems(evidence: Evidence) -> list[str]:
    problems = []
    if evidence.pflash:
        problems.append('QEMU was given %s for a BIOS guest' %
                        _drives(evidence.pflash))
    if evidence.nvram_files:
        problems.append('NVRAM exists for the domain: %s' %
                        ', '.join(evidence.nvram_files))
    return problems


def judge(expected: str, evidence: Evidence) -> list[str]:
    """What in the evidence contradicts the request; empty when it proves
    it.
    """
    problems = []
    if expected != FIRMWARE_BIOS and evidence.marker is None:
        problems.append('the firmware never showed on the serial console')
    if not evidence.command_line:
        # Without it the drives are unknown, not absent.
        problems.append("QEMU's command line is not in its log, so the "
                        "flash drives it was given are unknown")
        evidence = dataclasses.replace(evidence, pflash=None)
    if expected == FIRMWARE_STATELESS:
        problems += _stateless_problems(evidence)
    elif expected == FIRMWARE_STATEFUL:
        problems += _stateful_problems(evidence)
    else:
        problems += _bios_problems(evidence)
    if (evidence.pflash and evidence.loader and
            evidence.pflash[0].filename != evidence.loader):
        problems.append('pflash0 is %s, not the loader of the live XML '
                        '(%s)' % (evidence.pflash[0].filename,
                                  evidence.loader))
    return problems


def evidence_summary(evidence: Evidence) -> str:
    """``1 read-only pflash, no NVRAM``: the evidence in a few words."""
    nvram = ('%d NVRAM file(s)' % len(evidence.nvram_files)
             if evidence.nvram_files else 'no NVRAM')
    if not evidence.command_line:
        return 'flash drives unknown, %s' % nvram
    read_only = sum(1 for d in evidence.pflash if d.read_only)
    writable = len(evidence.pflash) - read_only
    parts = []
    if read_only:
        parts.append('%d read-only pflash' % read_only)
    if writable:
        parts.append('%d writable pflash' % writable)
    if not evidence.pflash:
        parts.append('no pflash')
    return ', '.join(parts + [nvram])


# --- the flow ----------------------------------------------------------------

def free_instance_id(domain_names: ty.Iterable[str]) -> int:
    """An instance id whose domain name no domain here uses yet.

    Nova's database hands out ids; here a guest kept by ``--keep`` must not
    collide with the next one.
    """
    prefix = instance_obj.INSTANCE_NAME_TEMPLATE.partition('%')[0]
    ids = [0]
    for name in domain_names:
        if name.startswith(prefix):
            try:
                ids.append(int(name[len(prefix):], 16))
            except ValueError:
                continue
    return max(ids) + 1


#: Where runs of the tool on one machine take turns at naming domains on
#: a shared libvirt daemon (world-writable and sticky, as /tmp).
NAME_LOCK_DIRS = ('/run/lock', tempfile.gettempdir())


class DomainNameTurn:
    """Held from choosing a domain name until the domain is defined.

    A libvirt daemon is shared: two runs that list its domains at the same
    moment pick the same free name, and libvirt refuses the second at
    define. Runs of the tool on this machine take turns instead, with a
    lock named after the URI. An embedded libvirt belongs to one process
    and needs no turn.
    """

    def __init__(self, uri: str) -> None:
        self._fd: int | None = None
        if libvirt_host.embed_root(uri) is not None:
            return
        directory = next(d for d in NAME_LOCK_DIRS if os.path.isdir(d))
        path = os.path.join(directory, 'nova-firmware-%s.lock' % (
            hashlib.sha256(uri.encode()).hexdigest()[:16]))
        # No symlink is followed in a directory anyone can write to.
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW,
                           0o666)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        except BaseException:
            self.release()
            raise

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> 'DomainNameTurn':
        return self

    def __exit__(self, *exc_info: ty.Any) -> None:
        self.release()


def _file_size(path: str) -> int | None:
    try:
        return os.path.getsize(path)
    except OSError:
        return None


def _shutoff_reason(reason: int) -> str:
    """libvirt's reason for a domain being shut off, as a word."""
    prefix = 'VIR_DOMAIN_SHUTOFF_'
    for name in dir(libvirt_host.libvirt):
        if (name.startswith(prefix) and
                getattr(libvirt_host.libvirt, name) == reason):
            return name[len(prefix):].lower()
    return 'reason %d' % reason


def qemu_log_tail(uri: str, domain_name: str, count: int = 3) -> list[str]:
    """The last lines of a domain's QEMU log: how QEMU ended."""
    path = os.path.join(boot_evidence.qemu_log_dir(uri),
                        domain_name + '.log')
    try:
        with open(path, encoding='utf-8', errors='replace') as f:
            lines = [line.rstrip() for line in f if line.strip()]
    except OSError:
        return []
    # libvirt writes the command line one argument a line, each but the
    # last continued with a backslash; what QEMU and libvirt said after
    # the last start follows it.
    continued = [i for i, line in enumerate(lines) if line.endswith('\\')]
    if continued:
        lines = lines[continued[-1] + 2:]
    return lines[-count:]


class BootFlow:
    """The stages of one boot, recorded in a ``BootReport``."""

    def __init__(self, args: argparse.Namespace,
                 out: firmware_report.Output, state_dir: str,
                 signals: firmware_signals.SignalGuard) -> None:
        self.args = args
        self.state_dir = state_dir
        self.signals = signals
        self.report = firmware_report.BootReport(request={})
        self.progress = firmware_report.Progress(
            out.stdout, STAGES, enabled=not out.as_json)
        self.records = state.RunRecords(state_dir)
        self.record: state.RunRecord | None = None
        self.driver: libvirt_driver.LibvirtDriver | None = None
        self.client: report.SchedulerReportClient | None = None
        self.compute: compute_manager.ComputeManager | None = None
        self.instance: 'objects.Instance | None' = None
        self.qemu: state.QemuIdentity | None = None
        self.spawned = False
        self.cleanup_error: str | None = None

    def _stage(self, name: str,
               action: str) -> firmware_report.StageTimer:
        stage = firmware_report.Stage(name, action)
        self.report.stages.append(stage)
        return firmware_report.StageTimer(stage, self.progress,
                                          common.describe_error)

    def _skip(self, name: str, action: str, result: str = '',
              details: dict | None = None) -> None:
        stage = firmware_report.Stage(
            name, action, status=firmware_report.STATUS_SKIPPED,
            result=result, details=details or {})
        self.report.stages.append(stage)
        self.progress.start(stage)
        self.progress.finish(stage)

    @property
    def uri(self) -> str:
        return self.driver.host.uri

    def run(self, properties: dict[str, str],
            flavor: 'objects.Flavor') -> None:
        """Run every stage; raises what a stage raised, after cleanup."""
        with contextlib.ExitStack() as stack:
            adapter = self._placement(stack)
            self.client = report.SchedulerReportClient(adapter)
            self._compute()
            turn = stack.enter_context(DomainNameTurn(self.uri))
            request_spec = self._api(properties, flavor)
            self._begin_record()
            try:
                self._schedule(request_spec)
                self._spawn()
                turn.release()
                marker = self._wait_for_firmware()
                self._evidence(marker)
            finally:
                self._cleanup_whatever_happens()

    def _placement(self, stack: contextlib.ExitStack) -> ks_adapter.Adapter:
        with self._stage('placement',
                         placement.placement_description()) as stage:
            adapter = stack.enter_context(report.placement_client(CONF))
            probe = placement.probe_placement(adapter, common.hostname())
            stage.result = 'API %s, compute node %s' % (
                probe['api_versions'], probe['compute_node'])
        return adapter

    def _start_compute(self) -> None:
        self.driver = libvirt_driver.LibvirtDriver()
        self.compute = compute_manager.ComputeManager(
            self.driver, self.client)
        self.compute.init_host()

    def _compute(self) -> None:
        nodename = common.hostname()
        action = 'register %s, libvirt %s' % (nodename,
                                              libvirt_host.default_uri())
        with self._stage('compute', action) as stage:
            firmware_signals.interruptible(self._start_compute)
            support = self.driver.host.stateless_firmware_support()
            traits = self.client.get_provider_traits(
                self.compute.node_uuid).traits
            stage.result = 'provider %s' % self.compute.node_uuid
            stage.details = {
                'libvirt': common.version_str(support.libvirt_version),
                'qemu': common.version_str(support.qemu_version),
                'stateless_firmware': support.supported,
                'traits': sorted(traits),
            }
            removal = firmware_cleanup.remove_leftovers(
                self.records, self.driver.host, self.client)
            if removal.removed or removal.left:
                stage.details['earlier_runs'] = (
                    ['removed %s' % text for text in removal.removed] +
                    ['not removed: %s' % text for text in removal.left])
            self.qemu = state.other_qemu_identity(
                self.driver.host.get_capabilities().host.dac_base_labels.get(
                    CONF.libvirt.virt_type))
            if self.qemu is not None:
                state.check_qemu_can_reach(self.state_dir, self.qemu)
                stage.details['qemu_runs_as'] = str(self.qemu)

    def _api(self, properties: dict[str, str],
             flavor: 'objects.Flavor') -> 'objects.RequestSpec':
        action = 'validate %s, flavor %s' % (
            ' '.join('%s=%s' % kv for kv in sorted(properties.items())),
            common.flavor_summary(flavor))
        with self._stage('api', action) as stage:
            instance_id = free_instance_id(self.driver.list_instances())
            self.instance, request_spec = common.create_instance(
                flavor, properties, instance_id)
            common.check_machine_type(self.driver, request_spec.image)
            self.report.expected = expected_firmware(request_spec.image)
            stage.result = 'instance %s' % self.instance.uuid
            stage.details = {'expects': self.report.expected}
        return request_spec

    def _instance_dir(self) -> str:
        return os.path.dirname(self.driver.console_log_path(self.instance))

    def _begin_record(self) -> None:
        """Write down what the run is about to create, before it does."""
        self.record = state.RunRecord(
            instance_uuid=self.instance.uuid, domain=self.instance.name,
            uri=self.uri, instance_dir=self._instance_dir(),
            placement=placement.persistent_placement())
        self.records.begin(self.record)

    def _schedule(self, request_spec: 'objects.RequestSpec') -> None:
        query = scheduler_utils.ResourceRequest.from_request_spec(
            request_spec)
        action = 'GET /allocation_candidates?%s' % query.to_querystring()
        with self._stage('scheduler', action) as stage:
            selection = scheduler_manager.SchedulerManager(
                self.client).select_destinations(request_spec)
            claimed = selection.allocation_request['allocations'][
                selection.compute_node_uuid]['resources']
            stage.result = 'claimed %s on %s' % (
                ','.join('%s:%d' % kv for kv in sorted(claimed.items())),
                selection.nodename)

    def _prepare_instance_dir(self) -> None:
        """Create the guest's directory as QEMU must find it.

        Private to the user; when a libvirt daemon runs QEMU as another
        user, that user's group may pass through it and its parents in
        the state directory (see ``firmware_state``).
        """
        path = self._instance_dir()
        os.makedirs(path, mode=0o700, exist_ok=True)
        directories = [self.state_dir, os.path.dirname(path), path]
        if self.qemu is not None:
            state.open_to_qemu(directories, self.qemu)
        else:
            # QEMU runs as the user: nobody else needs to look in, also
            # where an earlier version of the tool left them open.
            for directory in directories:
                os.chmod(directory, 0o700)

    def _spawn(self) -> None:
        instance = self.instance
        with self._stage('spawn', '%s (%s)' % (instance.name,
                                               instance.uuid)) as stage:
            self._prepare_instance_dir()
            try:
                self.compute.build_and_run_instance(None, instance,
                                                    instance.image_meta)
            except Exception as exc:
                hint = self._permission_hint(exc)
                if hint is None:
                    raise
                raise common.CommandError(hint) from exc
            self.spawned = True
            stage.result = 'running'

    def _permission_hint(self, exc: Exception) -> str | None:
        """What to change when QEMU was refused a file of the guest."""
        if self.qemu is None or 'Permission denied' not in str(exc):
            return None
        return ('%s; libvirt runs QEMU as %s, which needs search permission '
                'on the directories down to %s and, with dynamic_ownership '
                '= 0 in libvirt\'s qemu.conf, read and write access to the '
                'files there: set dynamic_ownership = 1 (the default) or use '
                'a --state-dir QEMU\'s user owns' % (
                    common.describe_error(exc), self.qemu,
                    self._instance_dir()))

    def _guest_running(self) -> bool:
        try:
            return bool(self.driver.host.get_domain(
                self.instance.name).isActive())
        except exception.InstanceNotFound:
            return False

    def _qemu_stopped(self) -> common.CommandError:
        """The error of a guest whose QEMU ended before its firmware ran."""
        try:
            domain = self.driver.host.get_domain(self.instance.name)
            _state, reason = domain.state()
            how = 'shut off (%s)' % _shutoff_reason(reason)
        except exception.InstanceNotFound:
            how = 'gone'
        tail = qemu_log_tail(self.uri, self.instance.name)
        message = ('QEMU stopped before the firmware showed on the serial '
                   'console: domain %s is %s' % (self.instance.name, how))
        if tail:
            message += '; the end of its QEMU log: %s' % ' | '.join(tail)
        return common.CommandError(message)

    def _wait_for_firmware(self) -> str | None:
        console = self.driver.console_log_path(self.instance)
        timeout = self.args.timeout
        if self.report.expected == FIRMWARE_BIOS:
            self._skip('firmware',
                       'SeaBIOS does not write to the serial console')
            return None
        action = 'wait for it on the serial console (up to %gs)' % timeout
        with self._stage('firmware', action) as stage:
            stage.details = {'console': console}
            # The guest is watched as well: if QEMU dies, there is nothing
            # to wait for.
            marker = boot_evidence.wait_for_firmware(
                console, timeout, running=self._guest_running)
            if marker is None and not self._guest_running():
                stage.details['qemu_log'] = qemu_log_tail(
                    self.uri, self.instance.name)
                raise self._qemu_stopped()
            if marker is None:
                stage.status = firmware_report.STATUS_FAILED
                stage.result = 'nothing in %gs' % timeout
            else:
                stage.result = "'%s'" % marker.strip()
        return marker

    def _gather_evidence(self, marker: str | None) -> tuple[Evidence, str]:
        name = self.instance.name
        guest = libvirt_guest.Guest(self.driver.host.get_domain(name))
        live_xml = guest.get_xml_desc()
        live = vconfig.LibvirtConfigGuest()
        live.parse_str(live_xml)
        try:
            command_line = boot_evidence.last_qemu_command_line(
                self.uri, name)
        except FileNotFoundError:
            command_line = ''
        evidence = Evidence(
            marker=marker, loader=live.os_loader,
            loader_stateless=live.os_loader_stateless,
            nvram_element=live.os_nvram, command_line=command_line,
            pflash=boot_evidence.pflash_drives(command_line),
            nvram_files=boot_evidence.nvram_files(self.uri, name))
        return evidence, common.os_element(live_xml)

    def _evidence(self, marker: str | None) -> None:
        action = 'live <os>, QEMU command line, NVRAM files'
        with self._stage('evidence', action) as stage:
            evidence, os_xml = self._gather_evidence(marker)
            stage.details = {
                'os': os_xml,
                'pflash': [{'unit': d.unit, 'file': d.filename,
                            'read_only': d.read_only}
                           for d in evidence.pflash],
                'nvram': [{'file': path, 'bytes': _file_size(path)}
                          for path in evidence.nvram_files],
            }
            self.report.problems += judge(self.report.expected, evidence)
            stage.result = evidence_summary(evidence)
            if self.report.problems:
                stage.status = firmware_report.STATUS_FAILED

    def _leftovers(self) -> list[str]:
        instance = self.instance
        left = []
        if instance.name in self.driver.list_instances():
            left.append('domain %s is still defined' % instance.name)
        left += ['NVRAM file %s is left' % path for path in
                 boot_evidence.nvram_files(self.uri, instance.name)]
        instance_dir = self._instance_dir()
        if os.path.exists(instance_dir):
            left.append('instance directory %s is left' % instance_dir)
        if self.client.get_allocations_for_consumer(instance.uuid):
            left.append('placement still holds an allocation for %s' %
                        instance.uuid)
        return left

    def _keep(self) -> None:
        name = self.instance.name
        self.record.kept = True
        self.records.update(self.record)
        self.records.end(self.record, remove=False)
        # The options of this run that tell cleanup where to look.
        remove_with = [common.PROG, '--state-dir', self.state_dir]
        if self.args.connection:
            remove_with += ['--connection', self.args.connection]
        if self.args.config_file:
            for path in self.args.config_file:
                remove_with += ['--config-file', path]
        if self.args.placement_url:
            remove_with += ['--placement-url', self.args.placement_url]
        self._skip('cleanup', '--keep', result='%s left running' % name,
                   details={
                       'uri': self.uri,
                       'console': self.driver.console_log_path(
                           self.instance),
                       'instance_directory': self._instance_dir(),
                       'remove_with': shlex.join(remove_with + ['cleanup']),
                       'or': 'the next %s boot with this state directory'
                             % common.PROG,
                   })

    def _cleanup_whatever_happens(self) -> None:
        """Run the cleanup to its end, signals or not.

        A signal that arrives before the cleanup holds signals off raises
        once; the cleanup then simply starts (again) with signals held.
        """
        while True:
            try:
                with self.signals.deferred():
                    self._cleanup()
                return
            except firmware_signals.Interrupted:
                continue

    def _cleanup(self) -> None:
        """Delete the guest and its allocation, and check nothing is left.

        Never raises: it runs while another error may be on its way out,
        which must not be replaced by this one.
        """
        if self.args.keep and self.spawned:
            self._keep()
            return
        action = 'delete %s and its allocation' % self.instance.name
        left = ['the cleanup did not finish']
        try:
            with self._stage('cleanup', action) as stage:
                self.compute.terminate_instance(None, self.instance)
                left = self._leftovers()
                if left:
                    stage.status = firmware_report.STATUS_FAILED
                    stage.result = '; '.join(left)
                    self.report.problems += left
                else:
                    stage.result = ('no domain, NVRAM, instance files or '
                                    'allocation left')
        except Exception as exc:
            LOG.debug('Cleanup failed', exc_info=True)
            self.cleanup_error = common.describe_error(exc)
        finally:
            # With anything left, the record stays for the next run.
            self.records.end(self.record, remove=not left)


def _exit_code(flow: BootFlow, exc: BaseException | None) -> int:
    if exc is not None:
        return common.exit_code_for(exc)
    if flow.cleanup_error is not None:
        return common.EXIT_ERROR
    if flow.report.problems:
        return common.EXIT_FAILED
    return common.EXIT_OK


def check_timeout(timeout: float) -> None:
    if not (math.isfinite(timeout) and timeout > 0):
        raise common.CommandError(
            '--timeout must be a positive number of seconds, not %s' %
            timeout)


def run(args: argparse.Namespace, out: firmware_report.Output,
        state_dir: str) -> int:
    """``nova-firmware boot``; returns the exit status."""
    check_timeout(args.timeout)
    properties, flavor = common.request_from_args(
        args, common.STATELESS_PROPERTIES, out)
    # Refuse bad input at once, as the API would, before starting
    # anything; the api stage below validates again, as part of the flow.
    image_meta = compute_api.validate_flavor_image(
        flavor, common.image_dict(properties))
    for warning in common.request_warnings(image_meta):
        out.warning(warning)
    state.check_free_space(state_dir)
    query = scheduler_utils.ResourceRequest.from_request_spec(
        objects.RequestSpec.from_components(
            uuidutils.generate_uuid(), image_meta, flavor))
    state.check_disk_capacity(state_dir,
                              query.resources.get(orc.DISK_GB, 0))
    placement.configure_placement(args.placement_url)
    with firmware_signals.SignalGuard('%s boot' % common.PROG) as signals:
        return _run_flow(args, out, state_dir, signals, properties, flavor)


def _run_flow(args: argparse.Namespace, out: firmware_report.Output,
              state_dir: str, signals: firmware_signals.SignalGuard,
              properties: dict[str, str], flavor: 'objects.Flavor') -> int:
    flow = BootFlow(args, out, state_dir, signals)
    flow.report.request = {
        'image_properties': properties,
        'flavor': common.flavor_summary(flavor),
        'extra_specs': dict(flavor.extra_specs),
    }
    flow.report.warnings = out.warnings
    start = time.monotonic()
    error: BaseException | None = None
    try:
        flow.run(properties, flavor)
    except (Exception, KeyboardInterrupt, firmware_signals.Interrupted) as exc:
        LOG.debug('Boot failed', exc_info=True)
        error = exc
    if error is None and signals.received is not None:
        # It came during the cleanup, which finished first.
        error = firmware_signals.Interrupted(signal.Signals[signals.received])
    boot_report = flow.report
    boot_report.seconds = time.monotonic() - start
    boot_report.exit_code = _exit_code(flow, error)
    boot_report.proved = boot_report.exit_code == common.EXIT_OK
    if isinstance(error, (firmware_signals.Interrupted, KeyboardInterrupt)):
        boot_report.error = str(error) or 'interrupted'
    elif error is not None:
        boot_report.error = common.describe_error(error)
    elif flow.cleanup_error is not None:
        boot_report.error = 'cleanup failed: %s' % flow.cleanup_error
    if out.as_json:
        out.json(boot_report.to_dict())
    else:
        out.lines(firmware_report.boot_summary(boot_report))
    if boot_report.error is not None:
        out.error(boot_report.error)
    return boot_report.exit_code
