"""What the benchmarks share: configuration, real libvirt, requests.

The benchmarks drive the same entry points a deployment does (the compute
API's validation, the scheduler's ``ResourceRequest``, the libvirt driver,
the report client) on real libvirt and real placement, so they reuse the
functional tests' fixtures for those: one embedded QEMU driver root per
process (``EmbeddedLibvirtFixture``) and placement embedded in the process
(``PlacementFixture``).
"""

import contextlib
import os
import typing as ty

from oslo_utils import uuidutils

from nova.compute import api as compute_api
import nova.conf
from nova import objects
from nova.tests.fixtures import libvirt_embed

CONF = nova.conf.CONF

#: The smallest guest that boots OVMF to its shell under TCG.
FLAVOR = dict(id=1, name='bench.tiny', flavorid='bench.tiny', memory_mb=256,
              vcpus=1, root_gb=1, ephemeral_gb=0, swap=0, extra_specs={})

IMAGE_ID = 'b3a1d6f0-6a36-4c55-9a7e-2f0a8a3c1d42'


def configure(workdir: str) -> None:
    """Parse an empty command line and keep all state under ``workdir``."""
    CONF([], project='nova', default_config_files=[])
    CONF.set_override('state_path', workdir)
    CONF.set_override('instances_path', os.path.join(workdir, 'instances'))
    objects.register_all()


@contextlib.contextmanager
def embedded_libvirt() -> ty.Iterator[libvirt_embed.EmbeddedLibvirtFixture]:
    """``[libvirt]`` pointed at the process's embedded QEMU driver."""
    with libvirt_embed.EmbeddedLibvirtFixture() as fixture:
        yield fixture


def flavor() -> 'objects.Flavor':
    return objects.Flavor(**FLAVOR)


def image(stateless: ty.Optional[bool] = True,
          firmware_type: str = 'uefi') -> dict:
    """A Glance image dict as the image API returns it (string values)."""
    properties = {'hw_firmware_type': firmware_type}
    if stateless is not None:
        properties['hw_firmware_stateless'] = str(stateless).lower()
    return {
        'id': IMAGE_ID, 'name': 'bench', 'status': 'active',
        'disk_format': 'qcow2', 'container_format': 'bare',
        'min_ram': 0, 'min_disk': 0, 'size': 0,
        'properties': properties,
    }


def create_server(
    image_dict: dict, instance_id: int = 1,
) -> tuple['objects.Instance', 'objects.RequestSpec']:
    """Validate a server create as the API does; instance and spec."""
    return compute_api.API().create(flavor(), image_dict,
                                    display_name='bench',
                                    instance_id=instance_id)


def new_uuid() -> str:
    return uuidutils.generate_uuid()
