"""The control plane pipeline of upstream Nova, timed in its own virtualenv.

Run by ``benchmarks.control_plane`` with the Python of a virtualenv that
has upstream Nova (2024.2 or later, which has ``hw_firmware_stateless``)
and its test requirements installed; never imported by this tree. It
builds upstream's pipeline once, prints one JSON line describing it, then
answers each line ``N`` on its standard input with the time of ``N``
requests through each stage, as one JSON line.

Upstream's stages, matching those timed in this tree:

1. ``API._validate_flavor_image_nostatus`` on the image dict,
   ``ImageMeta.from_dict``, ``RequestSpec.from_components``,
   ``ResourceRequest.from_request_spec``, ``to_querystring``;
2. then ``blockinfo.get_disk_info`` and
   ``LibvirtDriver._get_guest_config(...).to_xml()`` on upstream's
   fakelibvirt (``LibvirtFixture``), as upstream's unit tests build guests.
"""

import json
import sys
import tempfile
import time
import warnings


def _build():
    # Upstream's test fixtures register its options and install its
    # fakelibvirt; importing them first is what its unit tests do.
    from nova.tests.fixtures import conf as conf_fixture
    from nova.tests.fixtures import libvirt as fakelibvirt

    from nova.compute import api as compute_api
    from nova import conf as nova_conf
    from nova import context as nova_context
    from nova import objects
    from nova.scheduler import utils as scheduler_utils
    from nova.virt import fake as fake_virt
    from nova.virt.libvirt import blockinfo
    from nova.virt.libvirt import driver as libvirt_driver

    conf = nova_conf.CONF
    conf_fixture.ConfFixture(conf).setUp()
    objects.register_all()
    if 'hw_firmware_stateless' not in objects.ImageMetaProps.fields:
        raise RuntimeError('this Nova has no hw_firmware_stateless '
                           '(it is older than 2024.2)')
    conf.set_override('instances_path', tempfile.mkdtemp())
    conf.set_override('virt_type', 'qemu', group='libvirt')
    fakelibvirt.LibvirtFixture().setUp()

    drvr = libvirt_driver.LibvirtDriver(fake_virt.FakeVirtAPI(), True)
    # As upstream's own stateless firmware test of _get_guest_config.
    drvr._host._supports_amd_sev = False
    drvr._host._supports_intel_tdx = False
    drvr._host._supports_uefi = True

    ctxt = nova_context.get_admin_context()
    flavor = objects.Flavor(
        id=1, name='bench.tiny', flavorid='bench.tiny', memory_mb=256,
        vcpus=1, root_gb=1, ephemeral_gb=0, swap=0, rxtx_factor=1.0,
        vcpu_weight=None, extra_specs={})
    image = {
        'id': 'b3a1d6f0-6a36-4c55-9a7e-2f0a8a3c1d42', 'name': 'bench',
        'status': 'active', 'disk_format': 'qcow2',
        'container_format': 'bare', 'min_ram': 0, 'min_disk': 0, 'size': 0,
        'properties': {'hw_firmware_type': 'uefi',
                       'hw_firmware_stateless': 'true'},
    }
    instance = objects.Instance(
        id=1, uuid='6f1e5d2c-3b4a-4c8d-9e0f-1a2b3c4d5e6f', flavor=flavor,
        image_ref=image['id'], system_metadata={}, project_id='demo',
        user_id='demo', display_name='bench', memory_mb=256, vcpus=1,
        root_gb=1, ephemeral_gb=0, pci_devices=objects.PciDeviceList(),
        numa_topology=None, config_drive=None, vm_mode=None, kernel_id=None,
        ramdisk_id=None, os_type='linux', ephemeral_key_uuid=None,
        vcpu_model=None, host='bench', node='bench', trusted_certs=None,
        resources=None, migration_context=None, info_cache=None,
        old_flavor=None, new_flavor=None, task_state=None, vm_state=None)

    def to_query():
        compute_api.API._validate_flavor_image_nostatus(
            ctxt, image, flavor, None)
        image_meta = objects.ImageMeta.from_dict(image)
        spec = objects.RequestSpec.from_components(
            ctxt, instance.uuid, image_meta, flavor, None, None, {}, None,
            None)
        query = scheduler_utils.ResourceRequest.from_request_spec(
            spec).to_querystring()
        return query, image_meta

    def full():
        query, image_meta = to_query()
        disk_info = blockinfo.get_disk_info(
            conf.libvirt.virt_type, instance, image_meta)
        xml = drvr._get_guest_config(
            instance, [], image_meta, disk_info).to_xml()
        return query, xml

    return to_query, full


def _per_request(func, count: int) -> float:
    start = time.perf_counter()
    for _ in range(count):
        func()
    return (time.perf_counter() - start) / count


def main() -> int:
    warnings.simplefilter('ignore')
    try:
        import nova.version
        version = nova.version.version_string()
        to_query, full = _build()
        query, xml = full()
    except Exception as ex:
        print(json.dumps({'error': '%s: %s' % (type(ex).__name__, ex)}))
        return 1
    print(json.dumps({'version': version, 'query': query,
                      'xml_bytes': len(xml), 'xml': xml}))
    sys.stdout.flush()
    for line in sys.stdin:
        count = int(line)
        print(json.dumps({'to_query': _per_request(to_query, count),
                          'full': _per_request(full, count)}))
        sys.stdout.flush()
    return 0


if __name__ == '__main__':
    sys.exit(main())
