"""What a user and an operator do with the cloud, through ``openstack``.

Every action is an ``openstack`` command (python-openstackclient and
osc-placement at the release's pins) run as the cloud's admin; what the
host shows is read with ``virsh -c qemu:///system`` and from libvirt's
NVRAM directory. Each check is a step of :class:`evidence.Evidence`.
"""

import json
import os
import re
import shlex
import subprocess
import time
import typing as ty
import urllib.parse

from tools.cloud import config as config_mod
from tools.cloud import evidence
from tools.cloud.evidence import StepError
from tools.cloud import services

TRAIT = 'COMPUTE_SECURITY_STATELESS_FIRMWARE'
#: The size of a per-instance copy of Debian's OVMF_VARS_4M.fd.
VARS_SIZE = 540672
#: What OVMF prints on the serial console on its way to the UEFI shell.
FIRMWARE_TEXT = re.compile(r'BdsDxe|UEFI Interactive Shell|Shell>')
DOMAIN_NAME = re.compile(r'^cloud-[0-9a-f]{8}$')
#: An HTTP 400 as the client says it: "(HTTP 400)" in 2024.1's,
#: "BadRequestException: 400: Client Error" in 2026.2's.
BAD_REQUEST = re.compile(r'\(HTTP 400\)|BadRequestException: 400\b')

IMAGE_SIZE = 1 << 20
UEFI = {'hw_firmware_type': 'uefi', 'hw_machine_type': 'q35'}


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


def cloud_domains(virsh_list: str) -> list[str]:
    """The domains of ``virsh list --all --name`` that this cloud's
    instance name template makes.
    """
    return sorted(n for n in virsh_list.split() if DOMAIN_NAME.match(n))


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


class Scenario:

    def __init__(self, cli: Cli, ev: evidence.Evidence, hostname: str,
                 provider: str, work: str,
                 status: ServerStatus | None = None) -> None:
        self.cli = cli
        self.status = status
        self.ev = ev
        self.hostname = hostname
        self.provider = provider
        self.work = work
        self.domains: dict[str, str] = {}  # server name -> domain name

    # --- helpers -------------------------------------------------------------

    def server(self, name: str) -> dict:
        return self.cli.os_json('server', 'show', name)

    def wait_status(self, name: str, want: str, timeout: float = 300
                    ) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            server = (self.status.get(name) if self.status
                      else self.server(name))
            if server['status'] == want:
                return server
            if server['status'] == 'ERROR':
                raise StepError('%s went to ERROR: %s' % (
                    name, server.get('fault')))
            if time.monotonic() > deadline:
                raise StepError('%s is %s after %d s, not %s' % (
                    name, server['status'], timeout, want))
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
        self.domains[name] = domain
        return domain

    def xml(self, name: str) -> str:
        return self.cli.virsh('dumpxml', self.domain_of(name))

    def check_stateless(self, name: str) -> str:
        seen = evidence.check_stateless(self.xml(name))
        files = nvram_files(self.domains[name])
        if files:
            raise StepError('NVRAM files for %s: %s' % (
                self.domains[name], files))
        return '%s: %s; no file in %s' % (self.domains[name], seen,
                                          config_mod.NVRAM_DIR)

    def check_stateful(self, name: str) -> str:
        seen = evidence.check_stateful(self.xml(name))
        files = nvram_files(self.domains[name])
        sizes = sorted(files.values())
        if sizes != [VARS_SIZE]:
            raise StepError('NVRAM files for %s: %s, not one of %d bytes' %
                            (self.domains[name], files, VARS_SIZE))
        return '%s: %s; %s is %d bytes' % (
            self.domains[name], seen, next(iter(files)), VARS_SIZE)

    def usage(self) -> int:
        return usage_total(self.cli.os_json(
            'resource', 'provider', 'usage', 'show', self.provider))

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

    def trait(self) -> None:
        def check() -> str:
            deadline = time.monotonic() + 120
            while True:
                traits = self.cli.os('resource', 'provider', 'trait', 'list',
                                     self.provider, '-f', 'value').split()
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

        def candidates() -> str:
            rows = self.cli.os_json(
                'allocation', 'candidate', 'list', '--resource', 'VCPU=1',
                '--required', TRAIT)
            providers = {row['resource provider'] for row in rows}
            if self.provider not in providers:
                raise StepError('candidates: %s' % (providers or 'none'))
            return '%d candidate(s), %s among them' % (len(rows),
                                                       self.hostname)
        self.ev.check('allocation candidates',
                      '--required %s finds the compute' % TRAIT, candidates)

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
            shown = self.cli.os_json('image', 'show', 'cloud-stateless')[
                'properties']
            if shown.get('hw_firmware_stateless') not in ('true', True):
                raise StepError('properties: %s' % shown)
            self.cli.os('flavor', 'create', '--vcpus', '1', '--ram', '256',
                        '--disk', '1', 'cloud.tiny')
            self.cli.os('flavor', 'create', '--vcpus', '1', '--ram', '320',
                        '--disk', '1', 'cloud.small')
            return ('cloud-stateless: %s; cloud-uefi without it; cloud-bad '
                    'with "ture"; flavors cloud.tiny, cloud.small' % (
                        ', '.join('%s=%s' % (k, shown[k])
                                  for k in sorted(shown)
                                  if k.startswith('hw_'))))
        self.ev.check('images and flavors',
                      '1 MiB raw images, hw_firmware_type=uefi, '
                      'hw_machine_type=q35, one with '
                      'hw_firmware_stateless=true', check)

    def bad_input(self) -> None:
        def check() -> str:
            before = cloud_domains(self.cli.virsh('list', '--all', '--name'))
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
            after = cloud_domains(self.cli.virsh('list', '--all', '--name'))
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

    def boot(self) -> None:
        def stateless() -> str:
            start = time.monotonic()
            self.create('stateless', 'cloud-stateless')
            return 'ACTIVE in %.0f s as %s' % (time.monotonic() - start,
                                                self.domains['stateless'])
        ok = self.ev.check('boot stateless',
                           'server create --nic none reaches ACTIVE',
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
            return self.check_stateful('control')
        self.ev.check('control keeps its store',
                      'the image without the property boots with a '
                      '%d-byte VARS file' % VARS_SIZE, control)
        return ok

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
            return 'now %s: %s' % (flavor, self.check_stateless('stateless'))
        self.ev.check('resize (same host)', 'still stateless', resize)

        def shelve() -> str:
            self.cli.os('server', 'shelve', '--wait', 'stateless')
            self.wait_status('stateless', 'SHELVED_OFFLOADED')
            gone = cloud_domains(self.cli.virsh('list', '--all', '--name'))
            if self.domains['stateless'] in gone:
                raise StepError('shelved, but %s is still defined' %
                                self.domains['stateless'])
            self.cli.os('server', 'unshelve', '--wait', 'stateless')
            self.wait_status('stateless', 'ACTIVE', 60)
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

    def delete(self) -> None:
        def check() -> str:
            names = [n for n in ('stateless', 'control')
                     if self.cli.os_json('server', 'list', '--name',
                                         '^%s$' % n)]
            if names:
                self.cli.os('server', 'delete', '--wait', *names)
            left = self.cli.os_json('server', 'list')
            domains = cloud_domains(self.cli.virsh('list', '--all',
                                                   '--name'))
            files = {}
            for domain in self.domains.values():
                files.update(nvram_files(domain))
            used = self.usage()
            if left or domains or files or used:
                raise StepError('left: servers %s, domains %s, NVRAM %s, '
                                'usage %d' % (left, domains, files, used))
            return 'deleted %s: no server, no domain, no NVRAM, usage 0' % (
                ', '.join(names))
        self.ev.check('delete', 'no server, no domain, no NVRAM file, no '
                      'allocation left', check)

    def run(self, pids: ty.Collection[int], moves: bool = True) -> None:
        self.listeners(pids)
        self.trait()
        self.images()
        self.bad_input()
        if self.boot():
            self.lifecycle()
            if moves:
                self.moves()
        self.delete()
