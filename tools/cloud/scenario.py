"""What a user and an operator do with the cloud, through ``openstack``.

Every action is an ``openstack`` command (python-openstackclient and
osc-placement at the release's pins) run as the cloud's admin; what the
host shows is read with ``virsh -c qemu:///system`` and from libvirt's
NVRAM directory, the other computes' in their own namespaces
(:class:`SecondHost`). Each check is a step of :class:`evidence.Evidence`.
"""

import json
import os
import random
import re
import shlex
import subprocess
import time
import typing as ty
import urllib.parse

from tools.cloud import config as config_mod
from tools.cloud import evidence
from tools.cloud.evidence import StepError
from tools.cloud import releases
from tools.cloud import services
from tools.cloud import system

TRAIT = 'COMPUTE_SECURITY_STATELESS_FIRMWARE'
#: The size of a per-instance copy of Debian's OVMF_VARS_4M.fd.
VARS_SIZE = 540672
#: What OVMF prints on the serial console on its way to the UEFI shell.
FIRMWARE_TEXT = re.compile(r'BdsDxe|UEFI Interactive Shell|Shell>')
#: An HTTP 400 as the client says it: "(HTTP 400)" in 2024.1's,
#: "BadRequestException: 400: Client Error" in 2026.2's.
BAD_REQUEST = re.compile(r'\(HTTP 400\)|BadRequestException: 400\b')

#: What a terminal reads as a command (VT100 escape sequences), not as
#: text: the firmware's shell positions the cursor with them. The console
#: log the compute API gives has lost their ESC character, so a sequence
#: without it is one that starts with a digit.
CURSOR_MOVES = re.compile(r'(?:\x1b\[[0-9;?]*|\[[0-9][0-9;]*)[A-Za-z]')
#: The states a migration ends in.
MIGRATION_ENDED = ('completed', 'error', 'failed', 'cancelled')
#: Linux key codes (``virsh send-key --codeset linux``) of the digits
#: typed on a guest's keyboard.
DIGIT_KEYS = {str(d): d + 1 for d in range(1, 10)}

IMAGE_SIZE = 1 << 20
UEFI = {'hw_firmware_type': 'uefi', 'hw_machine_type': 'q35'}
#: A stateless aarch64 image: Nova's machine type for aarch64 is virt, and
#: the compute runs it under TCG (qemu-system-arm, qemu-efi-aarch64).
AARCH64_STATELESS = {'hw_architecture': 'aarch64', 'hw_firmware_type': 'uefi',
                     'hw_firmware_stateless': 'true'}


class CommandFailed(StepError):
    def __init__(self, argv: list[str], rc: int, output: str) -> None:
        self.rc = rc
        self.output = output
        super().__init__('%s exited %d: %s' % (
            ' '.join(argv[:4]), rc, evidence.one_line(output, 400)))


class Cli:
    """``openstack`` and ``virsh``, each run logged with its output."""

    def __init__(self, venv: str, env: dict[str, str], log: str) -> None:
        self.venv = venv
        self.env = dict(os.environ, **env)
        self.env['PATH'] = os.pathsep.join((os.path.join(venv, 'bin'),
                                            self.env.get('PATH', '')))
        # Each command starts a new Python: let it reuse cached bytecode.
        self.env.pop('PYTHONDONTWRITEBYTECODE', None)
        self.log = log

    def run(self, argv: list[str], check: bool = True,
            timeout: float = 600) -> subprocess.CompletedProcess:
        start = time.monotonic()
        proc = subprocess.run(argv, env=self.env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              stdin=subprocess.DEVNULL, timeout=timeout)
        with open(self.log, 'a') as f:
            f.write('$ %s  # exit %d in %.1f s\n%s%s\n' % (
                shlex.join(argv), proc.returncode, time.monotonic() - start,
                proc.stdout, proc.stderr))
        if check and proc.returncode != 0:
            raise CommandFailed(argv, proc.returncode,
                                proc.stderr + proc.stdout)
        return proc

    def os(self, *args: str, check: bool = True,
           timeout: float = 600) -> str:
        return self.run(['openstack', *args], check=check,
                        timeout=timeout).stdout

    def os_json(self, *args: str) -> ty.Any:
        return json.loads(self.os(*args, '-f', 'json'))

    def virsh(self, *args: str, check: bool = True) -> str:
        return self.run(['virsh', '-c', 'qemu:///system', *args],
                        check=check).stdout


def name_pattern(template: str) -> ty.Pattern[str]:
    """The names an ``instance_name_template`` of the form ``prefix-%08x``
    gives, and no other.
    """
    return re.compile('^%s[0-9a-f]{8}$' % re.escape(template.split('%', 1)[0]))


#: The domains of this cloud's patched compute.
DOMAIN_NAME = name_pattern(config_mod.INSTANCE_NAME_TEMPLATE)


def cloud_domains(virsh_list: str,
                  pattern: ty.Pattern[str] = DOMAIN_NAME) -> list[str]:
    """The domains of ``virsh list --all --name`` that ``pattern`` (by
    default this cloud's instance name template) matches.
    """
    return sorted(n for n in virsh_list.split() if pattern.match(n))


def nvram_files(name: str, directory: str = config_mod.NVRAM_DIR
                ) -> dict[str, int]:
    """NVRAM files of domain ``name``: path -> size."""
    try:
        entries = os.listdir(directory)
    except FileNotFoundError:
        return {}
    return {os.path.join(directory, e): os.path.getsize(
        os.path.join(directory, e))
        for e in entries if e.startswith(name + '_') or e == name}


def domain_for(api_name: str, template: str) -> str:
    """The domain name a compute with ``template`` gives the instance
    the API names ``api_name``.

    The API names an instance with its own ``instance_name_template``;
    a compute with another template names the domain with its own, from
    the same instance id.
    """
    match = re.search(r'([0-9a-f]{8})$', api_name)
    if not match:
        raise StepError('no instance id in %r' % api_name)
    return template % int(match.group(1), 16)


class Hypervisor:
    """A compute's libvirt as the admin of the host sees it: the
    daemon's domains (``virsh -c qemu:///system``) and NVRAM directory.
    """

    def __init__(self, cli: 'Cli', host: str, provider: str,
                 template: str = config_mod.INSTANCE_NAME_TEMPLATE,
                 log: str = '', instances_path: str = '') -> None:
        self.cli = cli
        self.host = host
        self.provider = provider
        self.template = template
        #: the compute's log, where its refusals show.
        self.log = log
        #: where its guests' disks are.
        self.instances_path = instances_path

    def describe(self) -> str:
        return 'libvirtd of %s' % self.host

    def domain_name(self, api_name: str) -> str:
        if self.template == config_mod.INSTANCE_NAME_TEMPLATE:
            return api_name
        return domain_for(api_name, self.template)

    def virsh(self, *args: str) -> str:
        return self.cli.virsh(*args)

    def domains(self) -> list[str]:
        names = re.compile('^%s[0-9a-f]{8}$' % re.escape(
            self.template.split('%', 1)[0]))
        return sorted(n for n in self.virsh('list', '--all', '--name').split()
                      if names.match(n))

    def xml(self, domain: str) -> str:
        return self.virsh('dumpxml', domain)

    def nvram(self, domain: str) -> dict[str, int]:
        return nvram_files(domain, self.nvram_dir)

    @property
    def nvram_dir(self) -> str:
        return config_mod.NVRAM_DIR

    def guest_dir(self, server_id: str) -> str:
        """The instance directory of ``server_id`` here, as the host
        sees it.
        """
        return os.path.join(self.instances_path, server_id)


class SecondHost(Hypervisor):
    """The libvirt daemons of a second host on this kernel
    (:func:`system.host_start`): ``virsh`` run in its namespaces, its
    NVRAM directory where the host sees it.
    """

    def __init__(self, cli: 'Cli', compute: config_mod.Compute,
                 provider: str, holder: int, log: str = '') -> None:
        super().__init__(cli, compute.host, provider,
                         compute.instance_name_template, log,
                         compute.instances_on_host)
        self.compute = compute
        self.holder = holder

    def virsh(self, *args: str) -> str:
        return self.cli.run(system.in_host(self.holder, [
            'virsh', '-c', 'qemu:///system', *args])).stdout

    @property
    def nvram_dir(self) -> str:
        return self.compute.host_path(config_mod.NVRAM_DIR)

    def hide(self, path: str) -> None:
        """Make ``path`` an empty directory on this host only, as on a
        host that keeps nothing there, until :meth:`unhide`.
        """
        self.cli.run(system.in_host(self.holder, [
            'mount', '-t', 'tmpfs', '-o', 'size=1m,mode=0755',
            'hidden', path]))

    def unhide(self, path: str) -> None:
        self.cli.run(system.in_host(self.holder, ['umount', path]))


def usage_total(usages: ty.Any) -> int:
    """The sum of ``openstack resource provider usage show -f json``."""
    if isinstance(usages, dict):
        return sum(int(v) for v in usages.values())
    return sum(int(row.get('usage', 0)) for row in usages)


class ServerStatus:
    """A server's status read from the compute API directly.

    Waiting polls; an ``openstack`` command per poll would spend more
    CPU starting Python than the guests and services it waits for.
    """

    def __init__(self, compute_url: str,
                 token: ty.Callable[[], str]) -> None:
        self.url = compute_url
        self.token = token

    def get(self, name: str) -> dict:
        status, _h, body = services.http(
            'GET', '%s/servers/detail?name=%s' % (
                self.url, urllib.parse.quote('^%s$' % name)),
            token=self.token(), headers={
                'OpenStack-API-Version': 'compute %s' %
                config_mod.COMPUTE_API_VERSION})
        if status != 200:
            raise StepError('GET servers?name=%s: HTTP %d %s' % (
                name, status, body))
        if len(body['servers']) != 1:
            raise StepError('%d servers named %s' % (len(body['servers']),
                                                     name))
        return body['servers'][0]

    def migrations(self, server_id: str) -> list[dict]:
        """The server's migrations, newest first, as the admin's
        ``GET /os-migrations`` gives them.
        """
        status, _h, body = services.http(
            'GET', '%s/os-migrations?instance_uuid=%s' % (
                self.url, server_id), token=self.token(), headers={
                'OpenStack-API-Version': 'compute %s' %
                config_mod.COMPUTE_API_VERSION})
        if status != 200:
            raise StepError('GET os-migrations: HTTP %d %s' % (status, body))
        return sorted(body['migrations'], key=lambda m: m['id'],
                      reverse=True)

    def show(self, server_id: str) -> dict:
        """One server as ``GET /servers/{id}`` gives it: with the fault
        of a server in ERROR that no cell took (cell0), which the list
        leaves out.
        """
        status, _h, body = services.http(
            'GET', '%s/servers/%s' % (self.url, server_id),
            token=self.token(), headers={
                'OpenStack-API-Version': 'compute %s' %
                config_mod.COMPUTE_API_VERSION})
        if status != 200:
            raise StepError('GET servers/%s: HTTP %d %s' % (
                server_id, status, body))
        return body['server']


class Scenario:

    def __init__(self, cli: Cli, ev: evidence.Evidence, hostname: str,
                 provider: str, work: str,
                 status: ServerStatus | None = None,
                 second: Hypervisor | None = None,
                 cloud: releases.Cloud | None = None,
                 start_peer: ty.Callable[[], ty.Optional['SecondHost']]
                 | None = None, compute_log: str = '',
                 instances_path: str = '') -> None:
        self.cli = cli
        self.status = status
        self.ev = ev
        self.hostname = hostname
        self.provider = provider
        self.work = work
        self.domains: dict[str, str] = {}  # server name -> domain name
        self.placed: dict[str, str] = {}   # server name -> compute host
        self.patched = Hypervisor(cli, hostname, provider,
                                  log=compute_log,
                                  instances_path=instances_path)
        #: the second compute, the release as published, if it runs.
        self.second = second
        self.cloud = cloud
        self.hypervisors = {hostname: self.patched}
        if second is not None:
            self.hypervisors[second.host] = second
        #: starts the patched compute's peer, to live-migrate to.
        self.start_peer = start_peer

    # --- helpers -------------------------------------------------------------

    def server(self, name: str) -> dict:
        return self.cli.os_json('server', 'show', name)

    def poll(self, name: str) -> dict:
        server = (self.status.get(name) if self.status
                  else self.server(name))
        host = (server.get('OS-EXT-SRV-ATTR:host') or
                server.get('compute_host') or server.get('host'))
        if host:
            self.placed[name] = host
        return server

    def wait_status(self, name: str, want: str, timeout: float = 300
                    ) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            server = self.poll(name)
            if server['status'] == want:
                return server
            if server['status'] == 'ERROR':
                raise StepError('%s went to ERROR: %s' % (
                    name, server.get('fault')))
            if time.monotonic() > deadline:
                raise StepError('%s is %s after %d s, not %s' % (
                    name, server['status'], timeout, want))
            time.sleep(1)

    def wait_settled(self, name: str, timeout: float = 300) -> dict:
        """The server once it is ACTIVE, or ERROR with its fault.

        The conductor records an instance's ERROR state and then, a
        moment later, its fault: a poll in between sees no fault. The
        list leaves out the fault of a server no cell took (cell0, "No
        valid host"): it is read from the server itself.
        """
        deadline = time.monotonic() + timeout
        while True:
            server = self.poll(name)
            if server['status'] == 'ERROR' and not server.get('fault'):
                server = (self.status.show(server['id']) if self.status
                          else self.server(name))
            if server['status'] == 'ACTIVE' or (
                    server['status'] == 'ERROR' and server.get('fault')):
                return server
            if time.monotonic() > deadline:
                raise StepError('%s is %s after %d s' % (
                    name, server['status'], timeout))
            time.sleep(1)

    def domain_of(self, name: str) -> str:
        """The libvirt domain of server ``name``, as the admin sees it
        (``server show``); the name is the instance's for its life.
        """
        if name in self.domains:
            return self.domains[name]
        server = self.server(name)
        # Newer clients drop the extension's prefix.
        domain = (server.get('OS-EXT-SRV-ATTR:instance_name') or
                  server.get('instance_name'))
        if not domain:
            raise StepError('server show gives no instance name: %s' %
                            sorted(server))
        host = (server.get('OS-EXT-SRV-ATTR:host') or
                server.get('compute_host') or server.get('host'))
        if host:
            self.placed[name] = host
        self.domains[name] = self.hypervisor_of(name).domain_name(domain)
        return self.domains[name]

    def hypervisor_of(self, name: str) -> Hypervisor:
        host = self.placed.get(name, self.hostname)
        try:
            return self.hypervisors[host]
        except KeyError:
            raise StepError('%s is on %s, not a compute of this cloud' % (
                name, host)) from None

    def xml(self, name: str) -> str:
        domain = self.domain_of(name)
        return self.hypervisor_of(name).xml(domain)

    def check_stateless(self, name: str) -> str:
        seen = evidence.check_stateless(self.xml(name))
        hv = self.hypervisor_of(name)
        files = hv.nvram(self.domains[name])
        if files:
            raise StepError('NVRAM files for %s: %s' % (
                self.domains[name], files))
        return '%s on %s: %s; no file in %s' % (
            self.domains[name], hv.host, seen, hv.nvram_dir)

    def check_stateful(self, name: str) -> str:
        seen = evidence.check_stateful(self.xml(name))
        hv = self.hypervisor_of(name)
        files = hv.nvram(self.domains[name])
        sizes = sorted(files.values())
        if sizes != [VARS_SIZE]:
            raise StepError('NVRAM files for %s: %s, not one of %d bytes' %
                            (self.domains[name], files, VARS_SIZE))
        return '%s on %s: %s; %s is %d bytes' % (
            self.domains[name], hv.host, seen, next(iter(files)), VARS_SIZE)

    def on_patched(self, name: str) -> None:
        host = self.placed.get(name)
        if host != self.hostname:
            raise StepError('%s is on %s, not on the patched compute %s' % (
                name, host, self.hostname))

    def all_domains(self) -> dict[str, list[str]]:
        """Each compute's guests, as its libvirt has them."""
        return {host: hv.domains() for host, hv in self.hypervisors.items()
                if hv.domains()}

    def usage_of(self, hv: Hypervisor) -> int:
        """What placement has allocated on ``hv``'s provider."""
        return usage_total(self.cli.os_json(
            'resource', 'provider', 'usage', 'show', hv.provider))

    def usage(self) -> int:
        """What placement has allocated on the computes' providers."""
        return sum(self.usage_of(hv) for hv in self.hypervisors.values())

    def left_on(self, hv: Hypervisor, domain: str,
                server_id: str) -> dict[str, list | dict]:
        """What ``hv`` keeps of a guest that left it or never came: its
        domain, NVRAM files and instance directory (empty when none).
        """
        return {'domains': [d for d in hv.domains() if d == domain],
                'NVRAM': hv.nvram(domain),
                'instance directory': [
                    d for d in [hv.guest_dir(server_id)]
                    if os.path.exists(d)]}

    def refusals(self, server_id: str) -> list[str]:
        """The second compute's ERROR lines about ``server_id``."""
        log = self.second.log if self.second else ''
        if not log or not os.path.isfile(log):
            return []
        with open(log, errors='replace') as f:
            return [line.strip() for line in f
                    if server_id in line and ' ERROR ' in line]

    def create(self, name: str, image: str, flavor: str = 'cloud.tiny'
               ) -> dict:
        self.cli.os('server', 'create', '--image', image, '--flavor', flavor,
                    '--nic', 'none', '--wait', name, timeout=600)
        server = self.wait_status(name, 'ACTIVE', 60)
        self.domain_of(name)
        return server

    # --- the steps -----------------------------------------------------------

    def listeners(self, pids: ty.Collection[int]) -> None:
        def check() -> str:
            out = self.cli.run(['ss', '-ltnpH']).stdout
            return evidence.check_loopback(evidence.listeners_of(
                evidence.parse_ss(out), pids))
        self.ev.check('listening on 127.0.0.1 only',
                      'every TCP listener of the cloud on loopback '
                      '(ss -ltnp)', check)

    def computes(self) -> None:
        def check() -> str:
            rows = self.cli.os_json('compute', 'service', 'list',
                                    '--service', 'nova-compute')
            seen = {row['Host']: '%s/%s' % (row['Status'], row['State'])
                    for row in rows}
            want = {host: 'enabled/up' for host in self.hypervisors}
            if seen != want:
                raise StepError('nova-compute services: %s' % seen)
            return '; '.join('%s %s on %s' % (host, seen[host],
                                              hv.describe())
                             for host, hv in self.hypervisors.items())
        self.ev.check('compute services',
                      'nova-compute on %s, each enabled and up, each on '
                      'its own libvirt' % ' and '.join(self.hypervisors),
                      check)

    def traits_of(self, provider: str) -> list[str]:
        return self.cli.os('resource', 'provider', 'trait', 'list',
                           provider, '-f', 'value').split()

    def trait(self) -> None:
        def check() -> str:
            deadline = time.monotonic() + 120
            while True:
                traits = self.traits_of(self.provider)
                if TRAIT in traits:
                    return '%s carries %s (%d traits)' % (
                        self.hostname, TRAIT, len(traits))
                if time.monotonic() > deadline:
                    raise StepError('%s lacks %s; has %s' % (
                        self.hostname, TRAIT, ' '.join(sorted(traits))))
                time.sleep(3)
        self.ev.check('provider trait',
                      '%s on the compute\'s resource provider' % TRAIT,
                      check)
        second = self.second
        reports = bool(self.cloud and self.cloud.unpatched_reports_trait)
        if second is not None:
            def unpatched() -> str:
                traits = self.traits_of(second.provider)
                if (TRAIT in traits) != reports:
                    raise StepError('%s %s %s' % (
                        second.host, 'lacks' if reports else 'carries',
                        TRAIT))
                return '%s %s %s (%d traits)%s' % (
                    second.host, 'carries' if reports else 'lacks', TRAIT,
                    len(traits), ': %s' % self.cloud.unpatched_note
                    if self.cloud and self.cloud.unpatched_note else '')
            self.ev.check(
                'unpatched compute\'s trait',
                'the release as published %s' % (
                    'reports %s from the libvirt version alone' % TRAIT
                    if reports else 'does not report %s' % TRAIT),
                unpatched)

        def candidates() -> str:
            rows = self.cli.os_json(
                'allocation', 'candidate', 'list', '--resource', 'VCPU=1',
                '--required', TRAIT)
            providers = {row['resource provider'] for row in rows}
            want = {self.provider}
            if second is not None and reports:
                want.add(second.provider)
            if providers != want:
                raise StepError('candidates: %s, not %s' % (
                    providers or 'none', want))
            return '%d candidate(s): %s' % (len(rows), ', '.join(
                hv.host for hv in self.hypervisors.values()
                if hv.provider in providers))
        self.ev.check('allocation candidates',
                      '--required %s finds the patched compute%s' % (
                          TRAIT, ' and the unpatched one' if second and
                          reports else second and ', only it' or ''),
                      candidates)

    def images(self) -> None:
        path = os.path.join(self.work, 'zeros.raw')
        with open(path, 'wb') as f:
            f.truncate(IMAGE_SIZE)

        def props(values: dict[str, str]) -> list[str]:
            return [arg for key, value in values.items()
                    for arg in ('--property', '%s=%s' % (key, value))]

        def upload(name: str, values: dict[str, str]) -> None:
            self.cli.os('image', 'create', '--disk-format', 'raw',
                        '--container-format', 'bare', '--file', path,
                        *props(values), name)

        def check() -> str:
            # As a user would: upload, then set the properties.
            upload('cloud-stateless', {})
            self.cli.os('image', 'set', *props(dict(
                UEFI, hw_firmware_stateless='true')), 'cloud-stateless')
            upload('cloud-uefi', UEFI)
            upload('cloud-bad', dict(UEFI, hw_firmware_stateless='ture'))
            upload('cloud-stateless-aarch64', AARCH64_STATELESS)
            shown = self.cli.os_json('image', 'show', 'cloud-stateless')[
                'properties']
            if shown.get('hw_firmware_stateless') not in ('true', True):
                raise StepError('properties: %s' % shown)
            self.cli.os('flavor', 'create', '--vcpus', '1', '--ram', '256',
                        '--disk', '1', 'cloud.tiny')
            self.cli.os('flavor', 'create', '--vcpus', '1', '--ram', '320',
                        '--disk', '1', 'cloud.small')
            return ('cloud-stateless: %s; cloud-uefi without it; cloud-bad '
                    'with "ture"; cloud-stateless-aarch64; flavors '
                    'cloud.tiny, cloud.small' % (
                        ', '.join('%s=%s' % (k, shown[k])
                                  for k in sorted(shown)
                                  if k.startswith('hw_'))))
        self.ev.check('images and flavors',
                      '1 MiB raw images, hw_firmware_type=uefi, '
                      'hw_machine_type=q35, one with '
                      'hw_firmware_stateless=true', check)

    def bad_input(self) -> None:
        def check() -> str:
            before = self.all_domains()
            proc = self.cli.run(['openstack', 'server', 'create', '--image',
                                 'cloud-bad', '--flavor', 'cloud.tiny',
                                 '--nic', 'none', 'cloud-bad'], check=False)
            out = (proc.stderr + proc.stdout).strip()
            if proc.returncode == 0:
                raise StepError('server create succeeded: %s' % out)
            if (not BAD_REQUEST.search(out) or
                    'hw_firmware_stateless' not in out):
                raise StepError('not a 400 naming the property: %s' % out)
            left = self.cli.os_json('server', 'list', '--name', 'cloud-bad')
            after = self.all_domains()
            used = self.usage()
            if left or after != before or used:
                raise StepError('left behind: servers %s, domains %s, '
                                'usage %d' % (left, after, used))
            return '%s; no server, no domain, usage 0' % (
                evidence.one_line(out, 300))
        self.ev.check('bad input refused',
                      'hw_firmware_stateless=ture: HTTP 400 at server '
                      'create naming the property; nothing allocated, no '
                      'domain', check)

    def landing(self, name: str) -> str:
        """Where ``name`` landed, and what the second compute said of it
        if it was tried there first.
        """
        server = self.poll(name)
        refused = self.refusals(server['id'])
        return 'on %s%s' % (self.placed.get(name), (
            '; the unpatched compute failed it first and it was '
            'rescheduled (%d ERROR lines in its log: %s)' % (
                len(refused), evidence.one_line(refused[-1], 200))
            if refused else ''))

    def boot(self) -> None:
        def stateless() -> str:
            start = time.monotonic()
            self.create('stateless', 'cloud-stateless')
            took = time.monotonic() - start
            where = self.landing('stateless')
            self.on_patched('stateless')
            return 'ACTIVE in %.0f s as %s %s' % (
                took, self.domains['stateless'], where)
        ok = self.ev.check('boot stateless',
                           'server create --nic none reaches ACTIVE%s' % (
                               ', on the patched compute' if self.second
                               else ''),
                           stateless).ok
        if ok:
            self.ev.check('firmware on the console',
                          'console log show: OVMF (BdsDxe / UEFI shell)',
                          lambda: self.console('stateless'))
            self.ev.check('stateless domain',
                          "one read-only pflash loader, stateless='yes', "
                          'no <nvram>; no NVRAM file',
                          lambda: self.check_stateless('stateless'))

        def control() -> str:
            self.create('control', 'cloud-uefi')
            where = self.landing('control')
            return '%s; %s' % (where, self.check_stateful('control'))
        self.ev.check('control keeps its store',
                      'the image without the property boots with a '
                      '%d-byte VARS file%s' % (
                          VARS_SIZE, ' (on either compute: where it '
                          'landed is shown)' if self.second else ''),
                      control)
        return ok

    def aarch64(self) -> None:
        """A stateless aarch64 guest, placed by its image's architecture
        (the computes list aarch64 among their guests under TCG).
        """
        name = 'stateless-aarch64'

        def check() -> str:
            start = time.monotonic()
            self.create(name, 'cloud-stateless-aarch64')
            took = time.monotonic() - start
            where = self.landing(name)
            self.on_patched(name)
            fw = evidence.firmware_of(self.xml(name))
            if fw.arch != 'aarch64':
                raise StepError('a %s domain: %s' % (fw.arch, fw.describe()))
            seen = self.check_stateless(name)
            shown = self.console(name)
            self.cli.os('server', 'delete', '--wait', name)
            return 'ACTIVE in %.0f s %s; %s; %s; deleted' % (
                took, where, seen, shown)
        self.ev.check('boot stateless aarch64',
                      'hw_architecture=aarch64 image: ACTIVE on the patched '
                      'compute, an aarch64 domain with one read-only pflash '
                      "loader, stateless='yes', no <nvram>, no NVRAM file; "
                      'AAVMF on the console', check)

    def unpatched_uefi(self) -> None:
        """A UEFI guest sent to the unpatched compute (``--host``)."""
        second = self.second
        if second is None:
            return
        boots = self.cloud is None or self.cloud.unpatched_boots_uefi

        def check() -> str:
            before = self.usage()
            had = second.domains()
            self.cli.os('server', 'create', '--image', 'cloud-uefi',
                        '--flavor', 'cloud.tiny', '--nic', 'none', '--host',
                        second.host, 'control-unpatched')
            server = self.wait_settled('control-unpatched')
            if boots:
                if server['status'] != 'ACTIVE':
                    raise StepError('ERROR: %s' % server.get('fault'))
                self.domain_of('control-unpatched')
                seen = self.check_stateful('control-unpatched')
            else:
                if server['status'] != 'ERROR':
                    raise StepError('%s reached %s' % (
                        'control-unpatched', server['status']))
                refused = self.refusals(server['id'])
                fault = (server.get('fault') or {}).get('message', '')
                seen = 'ERROR, fault "%s"; its log: %s' % (
                    fault, evidence.one_line(
                        refused[-1] if refused else 'no ERROR line', 300))
            self.cli.os('server', 'delete', '--wait', 'control-unpatched')
            left = [d for d in second.domains() if d not in had]
            after = self.usage()
            if left or after != before:
                raise StepError('%s; after delete: domains %s, usage %d '
                                'was %d' % (seen, left, after, before))
            return '%s; deleted, nothing left on it' % seen
        self.ev.check(
            'UEFI guest on the unpatched compute',
            'server create --host %s of the control image: %s' % (
                second.host, 'ACTIVE with its VARS file' if boots else
                'ERROR, the compute as published cannot define a UEFI '
                'guest on libvirt 9.0.0'), check)

    def no_valid_host(self) -> None:
        """The patched compute disabled: nowhere to boot stateless."""
        second = self.second
        if second is None:
            return
        reports = bool(self.cloud and self.cloud.unpatched_reports_trait)
        fault_re = (r'Exceeded maximum number of retries|No valid host'
                    if reports else r'No valid host')

        def check() -> str:
            before = self.usage()
            self.cli.os('compute', 'service', 'set', '--disable',
                        '--disable-reason', 'stateless firmware check',
                        self.hostname, 'nova-compute')
            try:
                self.cli.os('server', 'create', '--image', 'cloud-stateless',
                            '--flavor', 'cloud.tiny', '--nic', 'none',
                            'stateless-nohost')
                server = self.wait_settled('stateless-nohost')
            finally:
                self.cli.os('compute', 'service', 'set', '--enable',
                            self.hostname, 'nova-compute')
            fault = (server.get('fault') or {}).get('message', '')
            refused = self.refusals(server['id'])
            host = (server.get('OS-EXT-SRV-ATTR:host') or
                    server.get('compute_host'))
            mine = second.domain_name(server.get(
                'OS-EXT-SRV-ATTR:instance_name', ''))
            left = [d for d in second.domains() if d == mine]
            files = {}
            for domain in left:
                files.update(second.nvram(domain))
            after = self.usage()
            self.cli.os('server', 'delete', '--wait', 'stateless-nohost')
            seen = '%s, fault "%s", host %s%s; usage %d as before: %s' % (
                server['status'], fault, host or 'none',
                '; the unpatched compute failed it: %s' % evidence.one_line(
                    refused[-1], 300) if refused else '', after,
                after == before)
            if (server['status'] != 'ERROR' or
                    not re.search(fault_re, fault) or host or left or
                    files or after != before):
                raise StepError('%s; domains on %s: %s, NVRAM %s' % (
                    seen, second.host, left, files))
            if reports and not refused:
                raise StepError('%s; but no refusal in %s' % (
                    seen, second.log))
            return seen + '; no domain, no NVRAM on %s' % second.host
        self.ev.check(
            'patched compute disabled',
            'compute service set --disable on %s: a stateless server goes '
            'to ERROR (%s); nothing allocated, nothing left on %s; enabled '
            'again after' % (
                self.hostname,
                'the unpatched compute reports the trait, is picked and '
                'fails it: "Exceeded maximum number of retries"'
                if reports else '"No valid host"', second.host), check)

    def keep_moves_on_patched(self) -> None:
        """Disable an unpatched compute that reports the trait, as an
        operator must before moving stateless servers.
        """
        second = self.second
        if second is None or not (self.cloud and
                                  self.cloud.unpatched_reports_trait):
            return

        def check() -> str:
            self.cli.os('compute', 'service', 'set', '--disable',
                        '--disable-reason', 'not patched for stateless '
                        'firmware', second.host, 'nova-compute')
            return '%s disabled; stateless servers are scheduled to %s only'\
                % (second.host, self.hostname)
        self.ev.check('unpatched compute disabled',
                      'the operator disables the compute that reports the '
                      'trait but cannot boot it, before resize and '
                      'unshelve schedule', check)

    def console(self, name: str, timeout: float = 180) -> str:
        deadline = time.monotonic() + timeout
        while True:
            text = self.cli.os('console', 'log', 'show', name)
            found = FIRMWARE_TEXT.findall(text)
            if found:
                return 'console shows %s (%d bytes)' % (
                    ', '.join(sorted(set(found))), len(text))
            if time.monotonic() > deadline:
                raise StepError('no firmware text in %d s; console: %r' % (
                    timeout, text[-300:]))
            time.sleep(3)

    def lifecycle(self) -> None:
        """The moves that must keep the guest stateless."""
        def stop_start() -> str:
            self.cli.os('server', 'stop', 'stateless')
            self.wait_status('stateless', 'SHUTOFF')
            self.cli.os('server', 'start', 'stateless')
            self.wait_status('stateless', 'ACTIVE')
            return self.check_stateless('stateless')
        self.ev.check('stop and start', 'still stateless', stop_start)

        def hard_reboot() -> str:
            self.cli.os('server', 'reboot', '--hard', '--wait', 'stateless')
            self.wait_status('stateless', 'ACTIVE', 60)
            return self.check_stateless('stateless')
        self.ev.check('reboot --hard', 'still stateless', hard_reboot)

    def moves(self) -> None:
        """Rebuild, resize, shelve and rescue."""
        def rebuild() -> str:
            self.cli.os('server', 'rebuild', '--image', 'cloud-uefi',
                        '--wait', 'stateless')
            self.wait_status('stateless', 'ACTIVE', 60)
            seen = self.check_stateful('stateless')
            self.cli.os('server', 'rebuild', '--image', 'cloud-stateless',
                        '--wait', 'stateless')
            self.wait_status('stateless', 'ACTIVE', 60)
            return 'onto cloud-uefi: %s | back: %s' % (
                seen, self.check_stateless('stateless'))
        self.ev.check('rebuild onto the control image and back',
                      'a VARS file on cloud-uefi; stateless again, no '
                      'file, back on cloud-stateless', rebuild)

        def resize() -> str:
            self.cli.os('server', 'resize', '--flavor', 'cloud.small',
                        '--wait', 'stateless')
            self.wait_status('stateless', 'VERIFY_RESIZE', 60)
            self.cli.os('server', 'resize', 'confirm', 'stateless')
            server = self.wait_status('stateless', 'ACTIVE', 120)
            flavor = server['flavor']
            if isinstance(flavor, dict):  # microversion 2.47 and later
                flavor = flavor.get('original_name') or flavor.get('name')
            if 'cloud.small' not in str(flavor):
                raise StepError('flavor after resize: %s' % flavor)
            self.on_patched('stateless')
            return 'now %s: %s' % (flavor, self.check_stateless('stateless'))
        self.ev.check('resize (same host)', 'still stateless', resize)

        def shelve() -> str:
            self.cli.os('server', 'shelve', '--wait', 'stateless')
            self.wait_status('stateless', 'SHELVED_OFFLOADED')
            gone = self.all_domains()
            if any(self.domains['stateless'] in names
                   for names in gone.values()):
                raise StepError('shelved, but %s is still defined' %
                                self.domains['stateless'])
            self.cli.os('server', 'unshelve', '--wait', 'stateless')
            self.wait_status('stateless', 'ACTIVE', 60)
            self.on_patched('stateless')
            return self.check_stateless('stateless')
        self.ev.check('shelve and unshelve', 'offloaded, then stateless '
                      'again', shelve)

        def rescue() -> str:
            self.cli.os('server', 'rescue', 'stateless')
            self.wait_status('stateless', 'RESCUE')
            during = evidence.check_stateless(self.xml('stateless'))
            self.cli.os('server', 'unrescue', 'stateless')
            self.wait_status('stateless', 'ACTIVE')
            return 'rescued: %s | after: %s' % (
                during, self.check_stateless('stateless'))
        self.ev.check('rescue and unrescue', 'stateless while rescued and '
                      'after', rescue)

    def live_migrate(self, name: str, host: str,
                     timeout: float = 300) -> dict:
        """``server migrate --live-migration --host``; the migration once
        it ended, and the server back out of MIGRATING.
        """
        server_id = self.poll(name)['id']
        had = {m['id'] for m in self.status.migrations(server_id)}
        self.cli.os('server', 'migrate', '--live-migration', '--host', host,
                    name)
        deadline = time.monotonic() + timeout
        while True:
            new = [m for m in self.status.migrations(server_id)
                   if m['id'] not in had]
            server = self.poll(name)
            if (new and new[0]['status'] in MIGRATION_ENDED and
                    server['status'] != 'MIGRATING'):
                return new[0]
            if time.monotonic() > deadline:
                raise StepError('%s is %s after %d s, its migration %s' % (
                    name, server['status'], timeout,
                    new[0]['status'] if new else 'not recorded'))
            time.sleep(1)

    def migration_failure(self, server_id: str) -> str:
        """Why the patched compute says a live migration of
        ``server_id`` failed: its log's line.
        """
        if not self.patched.log or not os.path.isfile(self.patched.log):
            return 'no log'
        marker = 'Live Migration failure: '
        with open(self.patched.log, errors='replace') as f:
            lines = [line.strip() for line in f
                     if server_id in line and marker in line]
        if not lines:
            return 'no "%s" line' % marker.strip()
        # The message, without the log's prefix and the exception's
        # class name and message repeated after it.
        return lines[-1].split(marker, 1)[1].split(': libvirt.', 1)[0]

    def type_on_console(self, name: str, timeout: float = 60) -> str:
        """Type digits on the guest's keyboard where it runs; what
        ``console log show`` shows of them, once the firmware's shell
        echoed them.
        """
        hv = self.hypervisor_of(name)
        digits = ''.join(random.choice('123456789') for _ in range(8))
        hv.virsh('send-key', self.domain_of(name), '--codeset', 'linux',
                 *(str(DIGIT_KEYS[d]) for d in digits))
        deadline = time.monotonic() + timeout
        while True:
            # The shell moves the cursor before each character it echoes.
            text = CURSOR_MOVES.sub('', self.cli.os('console', 'log', 'show',
                                                    name))
            if digits in text:
                return 'typed %s on %s, echoed on the console' % (
                    digits, hv.host)
            if time.monotonic() > deadline:
                raise StepError('%s typed on %s, not on the console in '
                                '%d s: %r' % (digits, hv.host, timeout,
                                              text[-300:]))
            time.sleep(1)

    def live_migration(self) -> None:
        """Live-migrate the stateless server to the patched compute's
        peer: first to a peer without the firmware at the path the guest
        was started with, then with it.
        """
        if self.start_peer is None:
            return
        peer = self.start_peer()
        if peer is None:
            return
        self.hypervisors[peer.host] = peer
        name = 'stateless'
        source = self.patched
        loader: list[str] = []
        errors = bool(self.cloud and self.cloud.refused_live_migration_errors)

        def missing() -> str:
            self.on_patched(name)
            domain = self.domain_of(name)
            loader.append(evidence.firmware_of(self.xml(name)).loaders[0][
                'path'])
            firmware_dir = os.path.dirname(loader[0])
            before = self.usage_of(peer)
            peer.hide(firmware_dir)
            try:
                migration = self.live_migrate(name, peer.host)
            finally:
                peer.unhide(firmware_dir)
            server = self.poll(name)
            state = source.virsh('domstate', domain).strip()
            reason = self.migration_failure(server['id'])
            left = dict(self.left_on(peer, domain, server['id']),
                        usage=self.usage_of(peer) - before)
            seen = ('migration %s, server %s on %s, domain %s there; '
                    'the compute logged: %s' % (
                        migration['status'], server['status'],
                        self.placed.get(name), state,
                        evidence.one_line(reason, 300)))
            if (migration['status'] not in ('error', 'failed') or
                    server['status'] != ('ERROR' if errors else 'ACTIVE') or
                    state != 'running' or
                    self.placed.get(name) != self.hostname or
                    loader[0] not in reason):
                raise StepError(seen)
            if any(left.values()):
                raise StepError('%s; left on %s: %s' % (seen, peer.host,
                                                        left))
            if errors:
                # What the admin does once the guest is seen running
                # (the client asks first, unless told not to).
                self.cli.os('server', 'set', '--state', 'active',
                            '--auto-approve', name)
                self.wait_status(name, 'ACTIVE', 60)
                seen += '; server set --state active: ACTIVE'
            return '%s; nothing left on %s' % (seen, peer.host)
        if not self.ev.check(
                'live migration: the loader path missing',
                'the loader path the guest started with hidden on %s: its '
                'libvirt refuses the guest, naming the path; the migration '
                'fails, the guest runs on in %s%s, nothing left on the '
                'peer' % (peer.host, self.hostname,
                          ' (the server in ERROR until the operator sets it '
                          'active: Nova %s)' % self.cloud.release
                          if errors else ''), missing).ok:
            return

        def move() -> str:
            domain = self.domain_of(name)
            start = time.monotonic()
            migration = self.live_migrate(name, peer.host)
            took = time.monotonic() - start
            server = self.poll(name)
            if (migration['status'] != 'completed' or
                    server['status'] != 'ACTIVE' or
                    self.placed.get(name) != peer.host):
                raise StepError('migration %s, server %s on %s: %s' % (
                    migration['status'], server['status'],
                    self.placed.get(name), self.migration_failure(
                        server['id'])))
            state = peer.virsh('domstate', domain).strip()
            seen = self.check_stateless(name)
            now = evidence.firmware_of(self.xml(name)).loaders[0]['path']
            left = self.left_on(source, domain, server['id'])
            if state != 'running' or any(left.values()):
                raise StepError('domain %s on %s; left on %s: %s' % (
                    state, peer.host, self.hostname, left))
            disk = os.path.join(peer.guest_dir(server['id']), 'disk')
            if not os.path.isfile(disk):
                raise StepError('no disk at %s' % disk)
            typed = self.type_on_console(name)
            return ('completed in %.0f s, the disk copied to %s; %s; loader '
                    '%s; %s; nothing left on %s' % (
                        took, peer.host, seen, 'as on the source'
                        if now == loader[0] else 'was %s on the source' %
                        loader[0], typed, self.hostname))
        self.ev.check(
            'live migration',
            'server migrate --live-migration --host %s: completed, the '
            'guest runs there stateless (one read-only loader, no NVRAM '
            'on either host) and its firmware answers keys on the '
            'console; nothing left on %s' % (peer.host, self.hostname),
            move)

    def delete(self) -> None:
        def check() -> str:
            names = [n for n in ('stateless', 'control', 'control-unpatched',
                                 'stateless-nohost', 'stateless-aarch64')
                     if self.cli.os_json('server', 'list', '--name',
                                         '^%s$' % n)]
            if names:
                self.cli.os('server', 'delete', '--wait', *names)
            left = self.cli.os_json('server', 'list')
            domains = self.all_domains()
            files = {}
            for domain in self.domains.values():
                for hv in self.hypervisors.values():
                    files.update(hv.nvram(domain))
            used = self.usage()
            if left or domains or files or used:
                raise StepError('left: servers %s, domains %s, NVRAM %s, '
                                'usage %d' % (left, domains, files, used))
            return ('deleted %s: no server, no domain, no NVRAM, usage 0 '
                    'on %s' % (', '.join(names),
                               ' and '.join(self.hypervisors)))
        self.ev.check('delete', 'no server, no domain, no NVRAM file, no '
                      'allocation left%s' % (
                          ' on any compute' if self.second or
                          self.start_peer else ''), check)

    def run(self, pids: ty.Collection[int], moves: bool = True) -> None:
        self.listeners(pids)
        if self.second is not None:
            self.computes()
        self.trait()
        self.images()
        self.bad_input()
        if self.boot():
            self.aarch64()
            self.unpatched_uefi()
            self.no_valid_host()
            self.lifecycle()
            if moves:
                self.keep_moves_on_patched()
                self.moves()
            self.live_migration()
        self.delete()
