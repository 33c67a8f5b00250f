"""Rolling upgrades: services of two releases side by side.

During an upgrade, objects cross between services of different versions
(as JSON primitives over RPC, backported to what the receiver knows) and
computes restart on newer or older libvirt one at a time. What must hold:

* ``ImageMetaProps`` 1.38 added ``hw_firmware_stateless``, 1.42
  ``hw_mem_encryption_model``, 1.43 and 1.44 its values ``amd-sev-snp`` and
  ``intel-tdx``, as in Nova. A value an older service cannot hold is
  refused on the way there rather than read as weaker protection.
* A service that knows only 1.37 never sees ``hw_firmware_stateless``
  (it cannot boot stateless firmware, so it must not misread the field),
  and what an older service sends is read as "not requested", everything
  else intact. A newer version than this
  service knows is refused, never half-read.
* A request spec that went through an older service has lost the
  property, but the instance has not: its stashed image properties still
  ask for stateless firmware, so a compute that cannot boot it refuses the
  build rather than booting it with a writable variable store.
* A compute restarted on another libvirt adds or removes the trait at its
  next sync, also when that sync is the first after placement comes back.

Two-compute scheduling across versions is in ``test_compute_traits``.
"""

import os_traits
from oslo_serialization import jsonutils
from oslo_versionedobjects import exception as ovo_exception

from nova.compute import api as compute_api
from nova.compute import manager as compute_manager
from nova import exception
from nova import objects
from nova.scheduler.client import report
from nova.scheduler import manager as scheduler_manager
from nova.scheduler import utils as scheduler_utils
from nova import test
from nova.tests.fixtures import compute as compute_fixture
from nova.tests.fixtures import libvirt as fakelibvirt
from nova.tests.fixtures import placement as placement_fixture
from nova.virt import hardware
from nova.virt.libvirt import driver as libvirt_driver

STATELESS = os_traits.COMPUTE_SECURITY_STATELESS_FIRMWARE
OLD_LIBVIRT, NEW_LIBVIRT = (8, 5, 0), (8, 6, 0)
OPERATOR_TRAIT = 'CUSTOM_UPGRADE_WAVE_2'
HOST = 'compute-upgrade'
IMAGE_ID = '9d3c4b1a-2f6e-4a8d-b0c7-5e1f2a3b4c5d'

#: What a service of the release before ``hw_firmware_stateless`` knows.
OLD_MANIFEST = {'RequestSpec': '1.14', 'ImageMeta': '1.8',
                'ImageMetaProps': '1.37', 'Flavor': '1.2'}
CURRENT_MANIFEST = dict(OLD_MANIFEST, ImageMetaProps='1.44')

STATELESS_PROPS = {'hw_firmware_type': 'uefi',
                   'hw_firmware_stateless': 'true',
                   'hw_machine_type': 'q35',
                   'os_secure_boot': 'disabled'}

make_flavor = compute_fixture.make_flavor


def make_image(**properties) -> dict:
    return compute_fixture.make_image(IMAGE_ID, **properties)


def over_the_wire(obj, manifest: dict) -> dict:
    """The primitive ``obj`` is sent as to a service knowing ``manifest``:
    backported, then through JSON as RPC carries it.
    """
    return jsonutils.loads(jsonutils.dumps(
        obj.obj_to_primitive(version_manifest=manifest)))


def props_data(primitive: dict) -> dict:
    """The ImageMetaProps data inside a RequestSpec or ImageMeta primitive."""
    data = primitive['nova_object.data']
    if 'image' in data:
        data = data['image']['nova_object.data']
    return data['properties']


class ObjectsAcrossVersionsTestCase(test.NoDBTestCase):

    def setUp(self):
        super().setUp()
        self.instance, self.spec = compute_api.API().create(
            make_flavor(), make_image(**STATELESS_PROPS))

    def test_older_service_never_sees_the_field(self):
        props = self.spec.image.properties
        sent = {
            'RequestSpec': props_data(over_the_wire(self.spec,
                                                    OLD_MANIFEST)),
            'ImageMeta': props_data(over_the_wire(self.spec.image,
                                                  OLD_MANIFEST)),
            'ImageMetaProps': jsonutils.loads(jsonutils.dumps(
                props.obj_to_primitive(target_version='1.37'))),
        }
        for what, primitive in sent.items():
            self.assertEqual('1.37', primitive['nova_object.version'], what)
            # (Nested in another object, oslo.versionedobjects leaves the
            # name in the list of changed fields; a 1.37 service drops
            # names it does not know when it reads them.)
            # Everything an older service does know is kept as it was.
            self.assertEqual(
                {'hw_firmware_type': 'uefi', 'hw_machine_type': 'q35',
                 'os_secure_boot': 'disabled'},
                primitive['nova_object.data'], what)
        # Backporting a copy leaves the object itself alone.
        self.assertIs(True, props.hw_firmware_stateless)

    def test_current_service_keeps_the_field(self):
        props = props_data(over_the_wire(self.spec, CURRENT_MANIFEST))
        self.assertEqual('1.44', props['nova_object.version'])
        self.assertIs(True, props['nova_object.data']['hw_firmware_stateless'])

    def test_what_an_older_service_sends_is_read_as_not_requested(self):
        # An older conductor's request spec, as this scheduler receives it.
        primitive = over_the_wire(self.spec, OLD_MANIFEST)
        spec = objects.RequestSpec.obj_from_primitive(primitive)

        props = spec.image.properties
        self.assertFalse(props.obj_attr_is_set('hw_firmware_stateless'))
        self.assertIsNone(hardware.get_stateless_firmware_constraint(
            spec.image))
        self.assertEqual('uefi', props.hw_firmware_type)
        self.assertEqual('q35', props.hw_machine_type)
        # The data, not the whole primitive: its list of changed fields
        # comes from a set, in no fixed order.
        self.assertEqual(
            self.spec.flavor.obj_to_primitive()['nova_object.data'],
            spec.flavor.obj_to_primitive()['nova_object.data'])
        self.assertEqual(self.spec.instance_uuid, spec.instance_uuid)
        # So the placement query no longer asks for the trait ...
        query = scheduler_utils.ResourceRequest.from_request_spec(
            spec).to_querystring()
        self.assertNotIn(STATELESS, query)
        # ... while the instance itself still does.
        self.assertIs(True,
                      self.instance.image_meta.properties
                      .hw_firmware_stateless)

    def test_image_meta_with_manifest_round_trips(self):
        primitive = over_the_wire(self.spec.image, OLD_MANIFEST)
        self.assertEqual('1.8', primitive['nova_object.version'])
        image_meta = objects.ImageMeta.obj_from_primitive(primitive)
        self.assertEqual(IMAGE_ID, image_meta.id)
        self.assertFalse(image_meta.properties.obj_attr_is_set(
            'hw_firmware_stateless'))

        primitive = over_the_wire(self.spec.image, CURRENT_MANIFEST)
        image_meta = objects.ImageMeta.obj_from_primitive(primitive)
        self.assertIs(True, image_meta.properties.hw_firmware_stateless)

    def test_encryption_model_is_never_weakened_for_older_services(self):
        def spec_of(model):
            _instance, spec = compute_api.API().create(
                make_flavor(), make_image(
                    hw_mem_encryption='true', hw_mem_encryption_model=model,
                    **STATELESS_PROPS))
            return spec

        def query_of(spec):
            return scheduler_utils.ResourceRequest.from_request_spec(
                spec).to_querystring()

        # SEV-SNP reaches a service that knows it with its meaning intact.
        snp = spec_of('amd-sev-snp')
        received = objects.RequestSpec.obj_from_primitive(over_the_wire(
            snp, dict(OLD_MANIFEST, ImageMetaProps='1.43')))
        self.assertEqual(query_of(snp), query_of(received))
        self.assertIn(os_traits.HW_CPU_X86_AMD_SEV_SNP, query_of(received))
        # A service that does not would read plain SEV (and before 1.38
        # no stateless firmware): the request is refused instead.
        for version in ('1.42', '1.38', '1.37'):
            self.assertRaises(
                exception.ObjectActionError, over_the_wire, snp,
                dict(OLD_MANIFEST, ImageMetaProps=version))

        # AMD SEV, the one model services before 1.42 knew, loses only the
        # model's name: the older service asks placement the same.
        sev = spec_of('amd-sev')
        received = objects.RequestSpec.obj_from_primitive(over_the_wire(
            sev, dict(OLD_MANIFEST, ImageMetaProps='1.41')))
        self.assertIsNone(received.image.properties.get(
            'hw_mem_encryption_model'))
        self.assertEqual(query_of(sev), query_of(received))

    def test_primitive_written_by_older_release_is_read(self):
        # As a 1.37 service writes it, with its own changes list.
        old = {
            'nova_object.name': 'ImageMetaProps',
            'nova_object.namespace': 'nova',
            'nova_object.version': '1.37',
            'nova_object.data': {'hw_firmware_type': 'uefi',
                                 'hw_architecture': 'x86_64'},
            'nova_object.changes': ['hw_firmware_type', 'hw_architecture'],
        }
        props = objects.ImageMetaProps.obj_from_primitive(
            jsonutils.loads(jsonutils.dumps(old)))
        self.assertEqual('uefi', props.hw_firmware_type)
        self.assertEqual('x86_64', props.hw_architecture)
        self.assertIsNone(props.get('hw_firmware_stateless'))
        # Sent on to another current service, it is still unset, not false.
        again = objects.ImageMetaProps.obj_from_primitive(
            props.obj_to_primitive())
        self.assertFalse(again.obj_attr_is_set('hw_firmware_stateless'))

    def test_newer_version_is_refused_not_half_read(self):
        newer = self.spec.image.properties.obj_to_primitive()
        newer['nova_object.version'] = '1.45'
        newer['nova_object.data']['hw_firmware_from_the_future'] = True
        self.assertRaises(ovo_exception.IncompatibleObjectVersion,
                          objects.ImageMetaProps.obj_from_primitive, newer)


class ComputesAcrossVersionsTestCase(test.NoDBTestCase):

    def setUp(self):
        super().setUp()
        self.useFixture(compute_fixture.ComputeStateFixture())
        self.placement = self.useFixture(
            placement_fixture.PlacementFixture())
        self.operator = self.placement.adapter
        self.rp_uuid = compute_manager.compute_node_uuid(HOST)

    def start_compute(self, lv_ver: tuple, sync: bool = True):
        fake = self.useFixture(fakelibvirt.FakeLibvirtFixture(
            lv_ver=lv_ver, hostname=HOST))
        compute = compute_manager.ComputeManager(
            libvirt_driver.LibvirtDriver(),
            report.SchedulerReportClient(self.placement.interference),
            host=HOST)
        compute.driver.init_host(HOST)
        if sync:
            compute.update_available_resource()
        return compute, fake.hypervisor

    def traits(self) -> set:
        resp = self.operator.get(
            '/resource_providers/%s/traits' % self.rp_uuid,
            microversion='1.6')
        self.assertEqual(200, resp.status_code, resp.text)
        return set(resp.json()['traits'])

    def test_spec_from_older_conductor_cannot_make_instance_stateful(self):
        # Only a compute that cannot boot stateless firmware is up.
        compute, hypervisor = self.start_compute(OLD_LIBVIRT)
        self.assertNotIn(STATELESS, self.traits())
        instance, spec = compute_api.API().create(
            make_flavor(), make_image(**STATELESS_PROPS))
        # The spec went through a service of the previous release.
        old_spec = objects.RequestSpec.obj_from_primitive(
            over_the_wire(spec, OLD_MANIFEST))

        # Without the property, the scheduler finds the old host ...
        selection = scheduler_manager.SchedulerManager(
            report.SchedulerReportClient(self.operator)
        ).select_destinations(old_spec)
        self.assertEqual(HOST, selection.nodename)
        # ... but the compute reads the instance's own properties and
        # refuses, leaving no guest and giving the allocation back.
        self.assertRaises(exception.StatelessFirmwareNotSupported,
                          compute.build_and_run_instance, None, instance,
                          instance.image_meta)
        self.assertEqual('error', instance.vm_state)
        self.assertEqual({}, hypervisor.domains)
        self.assertEqual({}, hypervisor.nvram)
        self.assertEqual(
            {}, compute.report_client.get_allocations_for_consumer(
                instance.uuid))

    def test_upgrade_and_downgrade_while_placement_is_down(self):
        self.start_compute(OLD_LIBVIRT)
        placement_fixture.operator_add_traits(
            self.operator, self.rp_uuid, OPERATOR_TRAIT)
        self.assertEqual({OPERATOR_TRAIT}, self.traits() & {
            OPERATOR_TRAIT, STATELESS})

        for lv_ver, expected in ((NEW_LIBVIRT, True), (OLD_LIBVIRT, False)):
            # Restarted on another libvirt while placement is down: its
            # first sync fails, the provider keeps what it had ...
            before = self.traits()
            self.placement.interference.cut()
            compute, _hv = self.start_compute(lv_ver, sync=False)
            self.assertIs(expected, compute.driver.capabilities[
                'supports_stateless_firmware'])
            self.assertRaises(exception.PlacementAPIConnectFailure,
                              compute.update_available_resource)
            self.placement.interference.restore()
            self.assertEqual(before, self.traits())

            # ... and the next periodic sync makes the one change due.
            compute.update_available_resource()
            self.assertIs(expected, STATELESS in self.traits())
            self.assertIn(OPERATOR_TRAIT, self.traits())
            self.assertEqual({'traits': 1},
                             dict(compute.report_client.write_counts))
            compute.update_available_resource()
            self.assertEqual({'traits': 1},
                             dict(compute.report_client.write_counts))
