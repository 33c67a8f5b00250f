"""Boot check of the 2026.x series on this machine's real libvirt.

Run by ``tools/series`` with the Python of the virtualenv that holds the
patched nova (34.0.0 for 2026.2; the release is the name of the directory
the file is run from, so that a series of another release can link it).
Each guest is made by Nova's own code, in a process of its own:
``LibvirtDriver._get_guest_xml`` builds the domain XML with Nova's config
classes, and ``LibvirtDriver._create_guest`` defines and starts it through
Nova's ``Host``, on a real libvirt connection.

1. nova as published (the pristine tree, imported first) asks for a
   stateless UEFI guest and a stateful one: the check shows the XML and
   libvirt's answer (libvirt < 9.2.0 refuses both at define).
2. The patched tree boots the stateless guest: one read-only pflash, no
   NVRAM file, the firmware on the serial console.
3. The patched tree boots the stateful UEFI guest: a read-only pflash for
   the code, a writable one for the variable store, and the NVRAM file
   libvirt created from the template.

With ``--architecture aarch64``, the patched tree also boots a stateless
aarch64 guest (``hw_architecture=aarch64``, on Nova's machine type for it,
``virt``), which an x86_64 host runs under TCG when its libvirt offers
aarch64 guests for the virt type (``qemu-system-arm`` and the AAVMF
firmware, ``qemu-efi-aarch64`` on Debian and Ubuntu, installed).

Exits 0 when all of them show what they should.

On a compute host that runs the patched release, ``--config-file`` checks
the Nova installed there instead (2 and 3 only, nothing to compare it
with), reading its configuration as nova-compute does (``[libvirt]
virt_type``, ``kvm`` when unset, and ``[libvirt] connection_uri``,
``qemu:///system`` when unset)::

    python3 series/RELEASE/boot_check.py --config-file /etc/nova/nova.conf

The guests' files go under ``/var/tmp`` and are removed afterwards (unless
``--keep``); nothing of the compute service's is touched.
"""

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
#: The series this file was run from.
RELEASE = os.path.basename(HERE)

#: tools/series of the checkout this file is in, where evidence.py lives.
DEFAULT_EVIDENCE_LIB = os.path.join(HERE, os.pardir, os.pardir, 'tools',
                                    'series')

#: What a guest of each architecture adds to its image: the machine type
#: its firmware descriptors target. On x86_64 that is q35, asked for (Nova's
#: default there is pc); on aarch64 it is virt, Nova's default.
ARCH_PROPERTIES = {
    'x86_64': {'hw_machine_type': 'q35'},
    'aarch64': {'hw_architecture': 'aarch64'},
}


def image_properties(guest: str, arch: str) -> dict:
    """The image properties of a ``stateless`` or ``stateful`` UEFI guest
    of ``arch``.
    """
    props = {'hw_firmware_type': 'uefi', **ARCH_PROPERTIES.get(arch, {})}
    if guest == 'stateless':
        props['hw_firmware_stateless'] = 'true'
    return props


QEMU_CONF_EMBED = '''# Written by the series boot check.
# No virtlogd in an embedded driver: QEMU writes its logs itself.
stdio_handler = "file"
user = "root"
group = "root"
'''


# --- the guest, made by Nova (runs in a child process) ----------------------

class _VirtAPI:
    """The compute manager's side of the driver: not needed here."""

    def __getattr__(self, name):
        raise AttributeError(name)


def _config_argv(config_files: list[str] | None) -> list[str]:
    argv = []
    for path in config_files or ():
        argv += ['--config-file', path]
    return argv


def _read_config(config_files: list[str] | None):
    """nova's configuration, from these files only."""
    import nova.conf
    conf = nova.conf.CONF
    conf(_config_argv(config_files), project='nova', default_config_files=[])
    # What nova-compute registers at start from its configuration.
    nova.conf.neutron.register_dynamic_opts(conf)
    nova.conf.devices.register_dynamic_opts(conf)
    return conf


def configured_connection(config_files: list[str],
                          connection: str | None) -> tuple[str, str, str]:
    """The libvirt URI nova-compute would open with this configuration.

    Returns the URI, where it comes from, and the virt type.
    """
    os.environ.setdefault('OS_NOVA_DISABLE_EVENTLET_PATCHING', 'True')
    conf = _read_config(config_files)
    from nova.virt.libvirt import driver as libvirt_driver
    if connection:
        conf.set_override('connection_uri', connection, group='libvirt')
        source = '--connection'
    elif conf.libvirt.connection_uri:
        source = '[libvirt] connection_uri'
    else:
        source = 'not set: the default for virt_type %s' % (
            conf.libvirt.virt_type)
    return libvirt_driver.LibvirtDriver._uri(), source, conf.libvirt.virt_type


def _nova_guest(uri: str, work: str, name_id: int, guest_kind: str,
                arch: str | None, start: bool, evidence, timeout: float,
                keep: bool, config_files: list[str] | None = None) -> dict:
    """Build the guest with Nova's driver and define (and start) it.

    ``arch`` None is the host's architecture. Returns what happened: the
    domain XML Nova made, and either the domain's name or libvirt's error.
    """
    import nova
    from nova import context as nova_context
    from nova.network import model as network_model
    from nova import objects
    from nova import version as nova_version
    from nova.virt.libvirt import blockinfo
    from nova.virt.libvirt import driver as libvirt_driver
    from oslo_versionedobjects import fields

    conf = _read_config(config_files)
    objects.register_all()
    instances_path = os.path.join(work, 'instances')
    conf.set_override('instances_path', instances_path)
    conf.set_override('state_path', work)
    conf.set_override('connection_uri', uri, group='libvirt')
    if not config_files:
        conf.set_override('virt_type', 'qemu', group='libvirt')
    conf.set_override('images_type', 'raw', group='libvirt')
    conf.set_override('enabled', False, group='vnc')
    conf.set_override('enabled', False, group='spice')

    drv = libvirt_driver.LibvirtDriver(_VirtAPI(), read_only=False)
    drv._host.initialize()
    ctxt = nova_context.get_admin_context()
    caps = drv._host.get_capabilities()
    arch = arch or caps.host.cpu.arch
    properties = image_properties(guest_kind, arch)
    # The guests libvirt can run here, as Nova reports them to the
    # scheduler (an image's hw_architecture must be among them).
    if not any(g.arch == arch and conf.libvirt.virt_type in g.domains
               for g in caps.guests):
        return {'nova': os.path.dirname(nova.__file__),
                'version': nova_version.version_string(),
                'properties': properties, 'error': (
                    'libvirt offers no %s guest for virt_type %s' % (
                        arch, conf.libvirt.virt_type))}

    flavor = objects.Flavor(
        id=1, flavorid='1', name='tiny', memory_mb=256, vcpus=1,
        root_gb=1, ephemeral_gb=0, swap=0, extra_specs={},
        rxtx_factor=1.0, vcpu_weight=None, disabled=False, is_public=True)
    image = {'id': str(uuid.uuid4()), 'disk_format': 'raw',
             'container_format': 'bare', 'properties': properties}
    image_meta = objects.ImageMeta.from_dict(image)
    instance = objects.Instance(
        id=name_id, uuid=str(uuid.uuid4()), flavor=flavor,
        project_id='series', user_id='series', host='series',
        node='series', vm_state='building', power_state=0,
        root_gb=1, ephemeral_gb=0, memory_mb=256, vcpus=1,
        os_type=None, kernel_id='', ramdisk_id='', image_ref=image['id'],
        root_device_name=None, ephemeral_key_uuid=None,
        config_drive='', numa_topology=None, vcpu_model=None,
        pci_requests=objects.InstancePCIRequests(requests=[]),
        system_metadata={'image_%s' % k: v for k, v in properties.items()},
        metadata={}, display_name='series-boot-check',
        trusted_certs=None, resources=None)
    # Fields nothing here sets read as unset, not loaded from a database.
    for field_name, field in objects.Instance.fields.items():
        if instance.obj_attr_is_set(field_name):
            continue
        if field.nullable:
            setattr(instance, field_name, None)
        elif field.default is not fields.UnspecifiedDefault:
            setattr(instance, field_name, field.default)
    instance_dir = os.path.join(instances_path, instance.uuid)
    os.makedirs(instance_dir)
    # A blank root disk: OVMF finds nothing to boot and stops in its shell.
    with open(os.path.join(instance_dir, 'disk'), 'wb') as f:
        f.truncate(1 << 20)

    disk_info = blockinfo.get_disk_info(
        conf.libvirt.virt_type, instance, image_meta)
    result = {'nova': os.path.dirname(nova.__file__),
              'version': nova_version.version_string(),
              'virt_type': conf.libvirt.virt_type,
              'properties': properties, 'name': instance.name,
              'console': os.path.join(instance_dir, 'console.log')}
    try:
        xml = drv._get_guest_xml(ctxt, instance,
                                 network_model.NetworkInfo([]), disk_info,
                                 image_meta)
    except Exception as ex:
        traceback.print_exc()
        result['error'] = '%s: %s' % (type(ex).__name__, ex)
        return result
    result['xml'] = xml
    if start:
        # The host's decisions, as nova-compute makes them at start (the
        # patched Host's; logged at INFO).
        result['supports'] = {
            name: getattr(drv._host, name)
            for name in ('supports_stateless_firmware',
                         'supports_stateless_secure_boot')
            if hasattr(type(drv._host), name)}
    try:
        guest = drv._create_guest(ctxt, xml, instance, power_on=start)
    except Exception as ex:
        result['error'] = '%s: %s' % (type(ex).__name__, ex)
        # Defined but not started: leave nothing behind on the daemon.
        try:
            drv._host.get_guest(instance).delete_configuration()
        except Exception:
            pass
        return result
    result['defined'] = True
    if not start:
        guest.delete_configuration()
        return result
    # What the host shows, read while this process holds the connection
    # (an embedded driver lives only as long as its process).
    t0 = time.monotonic()
    marker = evidence.wait_for_firmware(result['console'], timeout)
    result['evidence'] = evidence.collect(
        uri, instance.name, guest.get_xml_desc(), marker)
    result['evidence']['seconds'] = round(time.monotonic() - t0, 1)
    # Sizes now: deleting the guest removes its NVRAM.
    template = (result['evidence']['live_os'].get('nvram') or {}).get(
        'template')
    result['evidence']['sizes'] = {
        path: os.path.getsize(path)
        for path in result['evidence']['nvram_files'] + [template]
        if path and os.path.exists(path)}
    if not keep:
        guest.poweroff()
        guest.delete_configuration()
    return result


def child_main(args: argparse.Namespace) -> int:
    sys.path.insert(0, os.path.dirname(args.evidence_lib))
    from series import evidence  # noqa: E402

    if args.config_file:
        # What the driver logs when it decides, as nova-compute would, on
        # this process's output (the log file of the check), not into
        # nova-compute's own log file.
        logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                            format='%(levelname)s %(name)s: %(message)s',
                            force=True)
    result = _nova_guest(args.uri, args.work, args.name_id, args.guest,
                         args.arch, not args.define_only, evidence,
                         args.timeout, args.keep, args.config_file)
    with open(args.result, 'w') as f:
        json.dump(result, f)
    sys.stdout.flush()
    # Nova's Host leaves its libvirt event threads running: end here.
    os._exit(0)


# --- the check (runs in the process tools/series started) -------------------

def _prepare_embed_root(root: str) -> str:
    os.makedirs(os.path.join(root, 'etc'), exist_ok=True)
    with open(os.path.join(root, 'etc', 'qemu.conf'), 'w') as f:
        f.write(QEMU_CONF_EMBED)
    return 'qemu:///embed?root=%s' % root


def _run_child(args, tree: str | None, label: str, guest: str,
               arch: str | None, define_only: bool, name_id: int) -> dict:
    """Run ``_nova_guest`` with the ``nova`` package of ``tree``.

    A ``tree`` of None runs it with the ``nova`` installed; an ``arch`` of
    None makes a guest of the host's architecture.
    """
    name = '%s-%s' % (guest, arch) if arch else guest
    result_path = os.path.join(args.work, '%s-%s.json' % (label, name))
    guest_work = os.path.join(args.guest_root, label)
    env = dict(os.environ)
    # Both trees are installed alike; putting one first on the path makes
    # ``import nova`` take it (the editable install's finder comes last).
    env['PYTHONPATH'] = os.pathsep.join(
        p for p in (tree, env.get('PYTHONPATH')) if p)
    if not env['PYTHONPATH']:
        del env['PYTHONPATH']
    env.setdefault('OS_NOVA_DISABLE_EVENTLET_PATCHING', 'True')
    cmd = [sys.executable, os.path.abspath(__file__), '--child',
           '--uri', args.connection, '--work', guest_work,
           '--guest', guest,
           '--name-id', str(name_id), '--result', result_path,
           '--evidence-lib', args.evidence_lib,
           '--timeout', str(args.timeout)]
    if arch:
        cmd += ['--arch', arch]
    if define_only:
        cmd.append('--define-only')
    if args.keep:
        cmd.append('--keep')
    for path in args.config_file or ():
        cmd += ['--config-file', path]
    log_path = os.path.join(args.work, '%s-%s.log' % (label, name))
    with open(log_path, 'w') as log:
        proc = subprocess.run(cmd, cwd=args.work, env=env, stdout=log,
                              stderr=subprocess.STDOUT)
    if proc.returncode != 0 or not os.path.exists(result_path):
        with open(log_path) as f:
            tail = f.read()[-3000:]
        return {'error': 'the Nova process failed (exit %d):\n%s' %
                (proc.returncode, tail)}
    with open(result_path) as f:
        result = json.load(f)
    with open(log_path, encoding='utf-8', errors='replace') as f:
        result['decisions'] = [
            line.strip() for line in f
            if line.startswith(('INFO ', 'WARNING '))
            and 'stateless firmware' in line]
    return result


def _stateful_problems(ev: dict) -> list[str]:
    problems = []
    drives = ev['pflash']
    if len(drives) != 2:
        problems.append('QEMU got %d pflash drives, not two' % len(drives))
    elif not drives[0]['read_only'] or drives[1]['read_only']:
        problems.append('not a read-only code and a writable store')
    nvram = ev['live_os'].get('nvram') or {}
    template = nvram.get('template')
    if not template:
        problems.append('the live <nvram> names no template')
    if len(ev['nvram_files']) != 1:
        problems.append('%d NVRAM files, not one' % len(ev['nvram_files']))
    elif template and ev['sizes'].get(ev['nvram_files'][0]) != (
            ev['sizes'].get(template)):
        problems.append('the NVRAM file is not the size of its template')
    if not ev['firmware_marker']:
        problems.append('the firmware printed nothing known on the serial '
                        'console')
    return problems


def _os_of(xml: str) -> str:
    start = xml.find('<os')
    end = xml.find('</os>')
    return xml[start:end + len('</os>')] if start >= 0 else ''


def _version_of(tree: str) -> str:
    """The version an sdist's tree says it is (its PKG-INFO)."""
    try:
        with open(os.path.join(tree, 'PKG-INFO'), encoding='utf-8') as f:
            for line in f:
                if line.startswith('Version: '):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return '?'


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--connection', metavar='URI',
                        help='libvirt URI (default: qemu:///embed with a '
                             'root of its own under --work)')
    parser.add_argument('--keep', action='store_true',
                        help='leave the patched guests running')
    parser.add_argument('--json', action='store_true',
                        help='print the evidence as JSON')
    parser.add_argument('--timeout', type=float, default=180.0)
    parser.add_argument('--architecture', action='append', default=[],
                        choices=sorted(ARCH_PROPERTIES), metavar='ARCH',
                        help='also boot a stateless guest of this '
                             'architecture with the patched tree (x86_64 '
                             'or aarch64; repeatable); the check fails '
                             'when libvirt offers no such guest for the '
                             'virt type')
    parser.add_argument('--config-file', action='append', metavar='PATH',
                        help='check the installed nova with this nova '
                             'configuration (repeatable), as nova-compute '
                             'reads it: its [libvirt] virt_type (kvm when '
                             'unset) and connection_uri (qemu:///system '
                             'when unset)')
    parser.add_argument('--evidence-lib', default=DEFAULT_EVIDENCE_LIB,
                        help='directory of evidence.py (default: '
                             'tools/series of this checkout)')
    parser.add_argument('--work',
                        help='directory for the check\'s files (default: '
                             'a new temporary directory)')
    args = parser.parse_args(argv)
    sys.path.insert(0, os.path.dirname(os.path.abspath(args.evidence_lib)))
    from series import evidence as evidence_mod  # noqa: E402

    unreadable = [path for path in args.config_file or ()
                  if not os.access(path, os.R_OK)]
    if unreadable:
        print('boot check: cannot read the configuration file %s' %
              ', '.join(unreadable), file=sys.stderr)
        return 2
    installed = bool(args.config_file)
    if installed:
        # The operator's host: the nova installed there, no pristine tree.
        pristine = patched = None
        args.connection, uri_from, virt_type = configured_connection(
            args.config_file, args.connection)
        version = None
    else:
        pristine = os.environ.get('SERIES_PRISTINE_TREE')
        patched = os.environ.get('SERIES_TREE')
        if not (pristine and patched):
            print('SERIES_PRISTINE_TREE and SERIES_TREE must name the '
                  'trees (or give --config-file to check the installed '
                  'nova)')
            return 2
        version = _version_of(pristine)
        uri_from = '--connection' if args.connection else 'default'
        virt_type = 'qemu'
    temporary_work = not args.work
    if temporary_work:
        args.work = tempfile.mkdtemp(prefix='nova-boot-check-')
    shutil.rmtree(args.work, ignore_errors=True)
    os.makedirs(args.work)
    args.guest_root = args.work
    if not args.connection:
        args.connection = _prepare_embed_root(
            os.path.join(args.work, 'embed'))
    elif not evidence_mod.embed_root(args.connection):
        problem = evidence_mod.connection_problem(args.connection)
        if problem:
            print('boot check: %s' % problem, file=sys.stderr)
            return 2
        args.guest_root = evidence_mod.daemon_guest_root(
            'nova-series-%s-' % RELEASE)
    # High instance ids: names unlikely to meet others' on a shared daemon.
    base_id = 0x5e000000 + (os.getpid() & 0xffff) * 16

    report = {'connection': args.connection, 'connection_from': uri_from,
              'virt_type': virt_type,
              'config_files': list(args.config_file or ()),
              'unpatched': {}, 'patched': {}}
    ok = True
    for n, guest in enumerate(() if installed else ('stateless',
                                                      'stateful')):
        res = _run_child(args, pristine, 'unpatched', guest, None, True,
                         base_id + n)
        report['unpatched'][guest] = res
        if res.get('defined'):
            # nova as published getting it defined would disprove the bug.
            ok = False
    guests = [('stateless', None), ('stateful', None)] + [
        ('stateless', arch) for arch in args.architecture]
    for n, (guest, arch) in enumerate(guests, start=2):
        res = _run_child(args, patched, 'patched', guest, arch, False,
                         base_id + n)
        entry = {'result': res}
        report['patched'][' '.join(filter(None, (guest, arch)))] = entry
        ev = res.get('evidence')
        if ev is None:
            entry['problems'] = [res.get('error', 'no evidence')]
        elif guest == 'stateless':
            entry['problems'] = evidence_mod.stateless_problems(ev)
        else:
            entry['problems'] = _stateful_problems(ev)
        ok = ok and not entry['problems']

    if args.guest_root != args.work and not args.keep:
        shutil.rmtree(args.guest_root, ignore_errors=True)
    if temporary_work and not args.keep:
        shutil.rmtree(args.work, ignore_errors=True)

    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print('libvirt URI: %s (%s), virt_type %s' % (
            args.connection, uri_from, virt_type))
        if installed:
            print('configuration read: %s' % ', '.join(args.config_file))
        for guest, res in report['unpatched'].items():
            print('\n--- nova %s as published (%s), %s UEFI guest' % (
                version, res.get('nova', '?'), guest))
            print('<os> Nova wrote:\n%s' % _os_of(res.get('xml', '')))
            print('libvirt: %s' % res.get('error', 'DEFINED (unexpected)'))
        for guest, entry in report['patched'].items():
            res = entry['result']
            print('\n--- %s nova %s (%s), %s UEFI guest %s' % (
                'installed' if installed else 'patched',
                res.get('version', version), res.get('nova', '?'), guest,
                res.get('name', '')))
            print('image properties: %s' % ' '.join(
                '%s=%s' % kv
                for kv in sorted(res.get('properties', {}).items())))
            for name, value in res.get('supports', {}).items():
                print('%s: %s' % (name.replace('_', ' '), value))
            for line in res.get('decisions', ()):
                print('log: %s' % line)
            ev = res.get('evidence')
            if ev:
                print('live <os>:\n%s' % ev['live_os_xml'])
                for d in ev['pflash']:
                    print('pflash%d: %s (%s)' % (
                        d['unit'], d['filename'],
                        'read-only' if d['read_only'] else 'writable'))
                print('NVRAM files: %s' % (', '.join(
                    '%s (%d bytes)' % (p, ev['sizes'].get(p, -1))
                    for p in ev['nvram_files']) or 'none'))
                print('serial console: %s after %.1f s' % (
                    ev['firmware_marker'] or 'nothing', ev['seconds']))
            print('result: %s' % ('OK' if not entry['problems'] else
                                  'FAILED: ' + '; '.join(entry['problems'])))
        if args.keep:
            print('\nguest files: %s' % args.guest_root)
            print('kept running: %s' % ', '.join(
                e['result']['name'] for e in report['patched'].values()
                if 'name' in e['result']))
    print('\nboot check %s' % ('passed' if ok else 'FAILED'))
    return 0 if ok else 1


if __name__ == '__main__':
    if '--child' in sys.argv:
        p = argparse.ArgumentParser()
        p.add_argument('--child', action='store_true')
        p.add_argument('--uri', required=True)
        p.add_argument('--work', required=True)
        p.add_argument('--guest', choices=('stateless', 'stateful'))
        p.add_argument('--arch')
        p.add_argument('--name-id', type=int, required=True)
        p.add_argument('--result', required=True)
        p.add_argument('--define-only', action='store_true')
        p.add_argument('--evidence-lib', required=True)
        p.add_argument('--timeout', type=float, default=180.0)
        p.add_argument('--keep', action='store_true')
        p.add_argument('--config-file', action='append')
        sys.exit(child_main(p.parse_args()))
    sys.exit(main(sys.argv[1:]))
