"""Spawn one stateless guest on ``qemu:///system`` and print the evidence.

Run by ``test_containers`` in a mount namespace where the firmware
directory is hidden, so this nova-compute does not see the files that the
libvirt daemon (in the host's namespace) uses, as when the two run in
separate containers. Writes one JSON document to ``--result``.
"""

import argparse
import json
import os
import sys

from oslo_log import log as logging

from nova.compute import api as compute_api
import nova.conf
from nova import objects
from nova.tests.fixtures import compute as compute_fixture
from nova.virt.libvirt import boot_evidence
from nova.virt.libvirt import driver as libvirt_driver

CONF = nova.conf.CONF

FIRMWARE_TIMEOUT = 90


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument('--work', required=True)
    parser.add_argument('--instance-id', type=int, required=True)
    parser.add_argument('--firmware-dir', required=True)
    parser.add_argument('--result', required=True)
    args = parser.parse_args(argv)

    logging.register_options(CONF)
    CONF([], project='nova', default_config_files=[])
    logging.setup(CONF, 'nova')
    objects.register_all()
    for name, value, group in (
            ('state_path', args.work, None),
            ('instances_path', os.path.join(args.work, 'instances'), None),
            ('virt_type', 'qemu', 'libvirt'),
            ('connection_uri', 'qemu:///system', 'libvirt')):
        CONF.set_override(name, value, group)

    driver = libvirt_driver.LibvirtDriver()
    driver.init_host('hidden-firmware')
    instance, _spec = compute_api.API().create(
        compute_fixture.make_flavor(),
        compute_fixture.make_image(hw_firmware_type='uefi',
                                   hw_firmware_stateless='true',
                                   hw_machine_type='q35'),
        instance_id=args.instance_id)
    result = {'name': instance.name,
              'firmware_files_seen': sorted(os.listdir(args.firmware_dir)),
              'supported': driver.capabilities[
                  'supports_stateless_firmware']}
    try:
        driver.spawn(None, instance, instance.image_meta)
        result['marker'] = boot_evidence.wait_for_firmware(
            driver.console_log_path(instance), FIRMWARE_TIMEOUT)
        config = driver._get_guest(instance).get_config()
        result['loader'] = config.os_loader
        result['loader_stateless'] = config.os_loader_stateless
        result['nvram'] = config.os_nvram
        result['nvram_files'] = boot_evidence.nvram_files(
            driver.host.uri, instance.name)
        result['pflash'] = [
            [d.unit, d.filename, d.read_only]
            for d in boot_evidence.pflash_drives(
                boot_evidence.last_qemu_command_line(driver.host.uri,
                                                     instance.name))]
    except Exception as ex:
        result['error'] = '%s: %s' % (type(ex).__name__, ex)
    finally:
        driver.destroy(None, instance)
    with open(args.result, 'w', encoding='utf-8') as f:
        json.dump(result, f)
    return 0


if __name__ == '__main__':
    sys.exit(main())
