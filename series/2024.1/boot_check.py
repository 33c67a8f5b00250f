"""Boot a stateless UEFI guest with the patched nova 29.4.0, on real libvirt.

Run by ``python3 -m tools.series 2024.1`` inside the virtualenv it made,
with the patched tree installed. Everything that decides is nova 29.4.0's
own code with the series applied: its ``Host`` probes libvirt and the
firmware descriptors and says whether this host supports stateless
firmware and which loader; its ``LibvirtDriver`` builds the guest's domain
XML from an instance and image with ``hw_firmware_stateless=true``, defines
and starts it (``_create_guest``), and undefines it as it deletes a guest.
Then the host is asked, not Nova: the live <os> element, the pflash drives
on QEMU's command line, the NVRAM files libvirt keeps, and the firmware's
own text on the serial console (``tools/series/evidence.py``).

The guest is of the host's architecture; ``--architecture aarch64`` adds
an aarch64 guest (``hw_architecture=aarch64``, on Nova's machine type for
it, ``virt``), which an x86_64 host runs under TCG when its libvirt offers
aarch64 guests for the virt type (``qemu-system-arm`` and the AAVMF
firmware, ``qemu-efi-aarch64`` on Debian and Ubuntu, installed).

The instance is built in memory (no database, no image service): the
compute manager's part of a spawn is out of scope here and covered by the
series' functional tests.

On a compute host that runs the patched release, the same check runs
with the Nova installed there, reading its configuration as nova-compute
does (``[libvirt] virt_type``, ``kvm`` when unset, and
``[libvirt] connection_uri``, ``qemu:///system`` when unset)::

    python3 series/2024.1/boot_check.py --config-file /etc/nova/nova.conf

The guest's files go under ``/var/tmp`` and are removed afterwards (unless
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
import uuid

#: QEMU configuration of an embedded driver: there is no virtlogd, so QEMU's
#: output goes to plain files; as root, QEMU runs as root.
EMBED_QEMU_CONF = 'stdio_handler = "file"\nuser = "root"\ngroup = "root"\n'

#: tools/series of the checkout this file is in, where evidence.py lives.
DEFAULT_EVIDENCE_LIB = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), os.pardir, os.pardir,
    'tools', 'series')

#: What a guest of each architecture adds to its image: the machine type
#: its firmware descriptors target. On x86_64 that is q35, asked for (Nova's
#: default there is pc); on aarch64 it is virt, Nova's default.
ARCH_PROPERTIES = {
    'x86_64': {'hw_machine_type': 'q35'},
    'aarch64': {'hw_architecture': 'aarch64'},
}


def stateless_image(arch):
    """The image of a stateless UEFI guest of ``arch``."""
    return {
        'id': '4e1d4ab2-5a0c-4d5e-9b7c-2d1c9b0f6a01',
        'name': 'stateless-uefi-%s' % arch,
        'disk_format': 'qcow2',
        'container_format': 'bare',
        'properties': {
            'hw_firmware_type': 'uefi',
            'hw_firmware_stateless': 'true',
            **ARCH_PROPERTIES.get(arch, {}),
        },
    }


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--connection', metavar='URI',
                        help='libvirt URI (default: qemu:///embed with a '
                             'root of its own, removed afterwards)')
    parser.add_argument('--keep', action='store_true',
                        help='leave the guest running for inspection')
    parser.add_argument('--json', action='store_true',
                        help='print the evidence as JSON')
    parser.add_argument('--architecture', action='append', default=[],
                        choices=sorted(ARCH_PROPERTIES), metavar='ARCH',
                        help='also boot a guest of this architecture '
                             '(x86_64 or aarch64; repeatable); the check '
                             'fails when libvirt offers no such guest for '
                             'the virt type. A guest of the host\'s '
                             'architecture is always booted')
    parser.add_argument('--timeout', type=float, default=180.0,
                        help='seconds to wait for the firmware on the '
                             'serial console (TCG is slow under load)')
    parser.add_argument('--config-file', action='append', metavar='PATH',
                        help='read this nova configuration (repeatable), '
                             'as nova-compute does: its [libvirt] '
                             'virt_type (kvm when unset) and '
                             'connection_uri (qemu:///system when unset) '
                             'are used, not the embedded TCG defaults')
    parser.add_argument('--evidence-lib', default=DEFAULT_EVIDENCE_LIB,
                        help='directory of evidence.py (default: '
                             'tools/series of this checkout)')
    parser.add_argument('--work',
                        help='directory for the instance files on the '
                             'embedded connection (a daemon\'s guests go '
                             'under /var/tmp, where QEMU can reach them; '
                             'default: a new temporary directory)')
    return parser.parse_args(argv)


def embed_root_for(args):
    # Short and private: libvirt puts the QEMU monitor socket under it, and
    # UNIX socket paths are limited to 107 bytes.
    root = tempfile.mkdtemp(prefix='nova-series-')
    os.makedirs(os.path.join(root, 'etc'))
    with open(os.path.join(root, 'etc', 'qemu.conf'), 'w') as f:
        f.write(EMBED_QEMU_CONF)
    return root


def read_config(config_files):
    """Parse the command line nova-compute would get, and nothing else."""
    import nova.conf
    from nova import config
    CONF = nova.conf.CONF
    argv = ['boot_check']
    for path in config_files or ():
        argv += ['--config-file', path]
    config.parse_args(argv, configure_db=False, init_rpc=False)
    # as the compute manager does when it starts
    nova.conf.neutron.register_dynamic_opts(CONF)
    nova.conf.devices.register_dynamic_opts(CONF)
    return CONF


def configure(CONF, uri, instances_path, from_files):
    if not from_files:
        CONF.set_override('virt_type', 'qemu', group='libvirt')
    CONF.set_override('connection_uri', uri, group='libvirt')
    CONF.set_override('instances_path', instances_path)
    # a local disk whatever the compute host's image backend is
    CONF.set_override('images_type', 'qcow2', group='libvirt')
    # no VNC port to allocate next to other guests of this machine
    CONF.set_override('enabled', False, group='vnc')
    CONF.set_override('use_cow_images', True)
    CONF.set_override('host', 'series-boot-check')
    return CONF


def make_instance(CONF, image):
    from nova import context as nova_context
    from nova import objects
    objects.register_all()
    flavor = objects.Flavor(
        id=1, flavorid='1', name='series.tiny', memory_mb=256, vcpus=1,
        root_gb=1, ephemeral_gb=0, swap=0, vcpu_weight=None,
        rxtx_factor=1.0, extra_specs={})
    image_meta = objects.ImageMeta.from_dict(image)
    # A high, random id: instance names must not collide with other guests
    # of a shared libvirt daemon.
    instance_id = 0x5e000000 + int.from_bytes(os.urandom(3), 'big')
    sysmeta = {'image_%s' % k: v
               for k, v in image['properties'].items()}
    instance = objects.Instance(
        id=instance_id, uuid=str(uuid.uuid4()), project_id='series',
        user_id='series', display_name='series-boot-check',
        image_ref=image['id'], flavor=flavor, old_flavor=None,
        new_flavor=None, instance_type_id=flavor.id, memory_mb=256,
        vcpus=1, root_gb=1, ephemeral_gb=0, system_metadata=sysmeta,
        pci_devices=objects.PciDeviceList(), numa_topology=None,
        config_drive=None, vm_mode=None, vm_state=None, kernel_id=None,
        ramdisk_id=None, os_type='linux', ephemeral_key_uuid=None,
        vcpu_model=None, host=CONF.host, node=CONF.host, task_state=None,
        trusted_certs=None, resources=None, migration_context=None,
        info_cache=None, cleaned=False, key_data=None, metadata={},
        device_metadata=None, hidden=False)
    return nova_context.get_admin_context(), instance, image_meta


def main(argv=None):
    args = parse_args(argv)
    sys.path.insert(0, args.evidence_lib)
    import evidence

    # As nova-compute starts (nova/cmd/__init__.py): the driver's Host
    # runs its event dispatch in green threads.
    import nova.monkey_patch  # noqa: F401

    unreadable = [path for path in args.config_file or ()
                  if not os.access(path, os.R_OK)]
    if unreadable:
        print('boot check: cannot read the configuration file %s' %
              ', '.join(unreadable), file=sys.stderr)
        return 2
    CONF = read_config(args.config_file)
    from nova.virt import fake
    from nova.virt.libvirt import driver as libvirt_driver

    work = args.work or tempfile.mkdtemp(prefix='nova-boot-check-')
    if args.config_file:
        # As nova-compute: the configured URI, else the virt type's.
        if args.connection:
            CONF.set_override('connection_uri', args.connection,
                              group='libvirt')
        uri = libvirt_driver.LibvirtDriver._uri()
        uri_from = ('--connection' if args.connection else
                    '[libvirt] connection_uri' if CONF.libvirt.connection_uri
                    else 'not set: the default for virt_type %s' %
                    CONF.libvirt.virt_type)
        # the decisions the driver logs (not into nova-compute's log file)
        logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                            format='%(levelname)s %(name)s: %(message)s',
                            force=True)
    elif args.connection:
        uri = args.connection
        uri_from = '--connection'
    else:
        uri = None
        uri_from = 'default: embedded, TCG'
    root = None
    if uri is None:
        root = embed_root_for(args)
        uri = 'qemu:///embed?root=%s' % root
    problem = evidence.connection_problem(uri)
    if problem:
        print('boot check: %s' % problem, file=sys.stderr)
        return 2
    if evidence.embed_root(uri) is None:
        guest_root = evidence.daemon_guest_root('nova-series-2024.1-')
        instances_path = os.path.join(guest_root, 'instances')
    else:
        guest_root = None
        instances_path = os.path.join(os.path.abspath(work), 'instances')
    os.makedirs(instances_path, exist_ok=True)
    configure(CONF, uri, instances_path, bool(args.config_file))

    report = {'uri': uri, 'uri_from': uri_from, 'nova': None,
              'verdict': None, 'config_files': list(CONF.config_file),
              'virt_type': CONF.libvirt.virt_type}
    drvr = libvirt_driver.LibvirtDriver(fake.FakeVirtAPI(), False)
    # There is no compute service record to enable or disable when the
    # connection opens or closes.
    drvr._set_host_enabled = lambda *args, **kwargs: None
    host = drvr._host
    host.initialize()
    import nova.version
    report['nova'] = nova.version.version_string()
    version = host.get_connection().getLibVersion()
    report['libvirt'] = '%d.%d.%d' % (
        version // 1000000, version // 1000 % 1000, version % 1000)
    drvr._update_host_specific_capabilities()
    traits = drvr.capabilities_as_traits()
    report['supports_stateless_firmware'] = drvr.capabilities[
        'supports_stateless_firmware']
    report['trait_reported'] = traits.get(
        'COMPUTE_SECURITY_STATELESS_FIRMWARE', False)
    problems = []
    if not report['trait_reported']:
        problems.append('the driver does not report the trait')

    caps = host.get_capabilities()
    host_arch = caps.host.cpu.arch
    # The guests libvirt can run here, as Nova reports them to the
    # scheduler (the image's hw_architecture must be among them).
    offered = {g.arch for g in caps.guests
               if CONF.libvirt.virt_type in g.domains}
    report['guests'] = []
    for arch in [host_arch] + [a for a in args.architecture
                               if a != host_arch]:
        if arch not in offered:
            problems.append('libvirt offers no %s guest for virt_type %s'
                            % (arch, CONF.libvirt.virt_type))
            continue
        guest_report = boot_guest(args, CONF, drvr, evidence, uri, root,
                                  instances_path, arch)
        report['guests'].append(guest_report)
        problems += ['%s guest: %s' % (arch, p)
                     for p in guest_report['problems']]
    if guest_root and not args.keep:
        shutil.rmtree(guest_root, ignore_errors=True)
    report['verdict'] = 'stateless' if not problems else 'FAILED'
    report['problems'] = problems
    _print(report, args.json)
    if not args.work and not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    if root and not args.keep:
        # the embedded driver lives as long as this process: leave its
        # state until exit, then remove it
        import atexit
        atexit.register(shutil.rmtree, root, True)
    return 0 if not problems else 1


def boot_guest(args, CONF, drvr, evidence, uri, root, instances_path,
               arch):
    """Boot a stateless guest of ``arch`` and undefine it as Nova does."""
    from nova.virt.libvirt import blockinfo
    from nova.virt.libvirt import guest as libvirt_guest
    from nova.virt.libvirt import utils as libvirt_utils

    host = drvr._host
    image = stateless_image(arch)
    ctxt, instance, image_meta = make_instance(CONF, image)
    report = {'architecture': arch, 'properties': image['properties'],
              'problems': []}
    problems = report['problems']
    machine = libvirt_utils.get_machine_type(image_meta)
    try:
        report['stateless_loader'] = host.get_stateless_loader(
            arch, machine)[0]
    except Exception as ex:
        problems.append('no stateless loader for %s/%s: %s' % (
            arch, machine, ex))
        return report

    # the disk the guest boots from: empty, so the firmware ends in its
    # shell
    inst_dir = os.path.join(instances_path, instance.uuid)
    os.makedirs(inst_dir, exist_ok=True)
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2',
                    os.path.join(inst_dir, 'disk'), '64M'], check=True)
    disk_info = blockinfo.get_disk_info(
        CONF.libvirt.virt_type, instance, image_meta)
    started = time.monotonic()
    xml = drvr._get_guest_xml(ctxt, instance, [], disk_info, image_meta)
    guest = drvr._create_guest(ctxt, xml, instance)
    name = guest.name
    report['domain'] = name
    console = os.path.join(inst_dir, 'console.log')
    marker = evidence.wait_for_firmware(console, args.timeout)
    report['boot_seconds'] = round(time.monotonic() - started, 1)
    live_xml = guest.get_xml_desc()
    report['evidence'] = evidence.collect(uri, name, live_xml, marker)
    report['console_tail'] = _tail(console)
    problems += evidence.stateless_problems(report['evidence'])

    if args.keep:
        report['kept'] = ('virsh -c %s dominfo %s' % (
            "'%s'" % uri if root else uri, name))
        # to remove by hand once the guest is undefined
        report['kept_files'] = inst_dir
    else:
        # as the driver deletes a guest: power off, then undefine with the
        # NVRAM flag, which must not fail for a guest that has none
        guest.poweroff()
        guest.delete_configuration()
        leftovers = evidence.nvram_files(uri, name)
        try:
            libvirt_guest.Guest(host.get_connection().lookupByName(name))
            problems.append('the domain is still defined after undefine')
        except Exception:
            pass
        if leftovers:
            problems.append('NVRAM left after undefine: %s' % leftovers)
        report['undefined'] = True
        shutil.rmtree(inst_dir, ignore_errors=True)
    return report


def _tail(path, lines=6):
    try:
        with open(path, encoding='utf-8', errors='replace') as f:
            text = f.read()
    except FileNotFoundError:
        return []
    # OVMF draws its screens with escape sequences
    import re
    text = re.sub(r'\x1b\[[0-9;?]*[A-Za-z]', '\n', text)
    return [ln.strip() for ln in text.splitlines() if ln.strip()][-lines:]


def _print(report, as_json):
    if as_json:
        print(json.dumps(report, indent=2, sort_keys=True))
        return
    print('nova %s, libvirt %s, on %s (URI %s), virt_type %s' % (
        report['nova'], report['libvirt'], report['uri'],
        report['uri_from'], report['virt_type']))
    print('configuration read: %s' % (
        ', '.join(report['config_files']) or 'none'))
    print('supports stateless firmware: %s (trait reported: %s)' % (
        report['supports_stateless_firmware'], report['trait_reported']))
    for guest in report['guests']:
        print('--- %s guest, image properties %s' % (
            guest['architecture'], ' '.join(
                '%s=%s' % kv for kv in sorted(guest['properties'].items()))))
        if 'stateless_loader' in guest:
            print('stateless loader: %s' % guest['stateless_loader'])
        ev = guest.get('evidence')
        if ev is None:
            continue
        print('domain %s, firmware on the serial console after %.1f s: %r'
              % (guest['domain'], guest['boot_seconds'],
                 ev['firmware_marker']))
        print('live <os>: %s' % ' '.join(ev['live_os_xml'].split()))
        print('QEMU pflash drives: %s' % ', '.join(
            'pflash%d %s%s' % (d['unit'], d['filename'],
                               ' read-only' if d['read_only']
                               else ' WRITABLE')
            for d in ev['pflash']) or 'none')
        print('QEMU arguments naming pflash: %s' % ' '.join(
            ev['pflash_arguments']))
        print('NVRAM files: %s' % (', '.join(ev['nvram_files']) or 'none'))
        print('serial console (last lines): %s' % ' | '.join(
            guest['console_tail']))
        if guest.get('kept'):
            print('kept running: %s (its files: %s)' % (
                guest['kept'], guest['kept_files']))
        elif guest.get('undefined'):
            print('undefined by Guest.delete_configuration (NVRAM flag): '
                  'OK')
    for problem in report['problems']:
        print('PROBLEM: %s' % problem)
    print('verdict: %s' % report['verdict'])


if __name__ == '__main__':
    sys.exit(main())
