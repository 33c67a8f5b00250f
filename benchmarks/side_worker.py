"""Another Nova's side of a comparison, run in that Nova's virtualenv.

Run by ``benchmarks.sides`` with the Python of a virtualenv holding a Nova
release (upstream 34.0.0, or a Nova patched by a series); never imported
by this tree, whose own ``nova`` package would shadow the other one.

It starts the way that release's ``nova-compute`` starts: importing
``nova.cmd.compute`` runs the service's own first line, which on 34.0.0
selects native threads and forbids eventlet, and on releases before the
native threading work monkey-patches the process with eventlet. It
imports no test code of Nova (``hello`` reports any ``nova.tests``
module loaded, and the benchmark refuses the side if there is one).

Then it answers one JSON request per line on standard input with one JSON
line:

``{"op": "pipeline", "root": DIR, "workdir": DIR}``
    Build the request pipeline on a real libvirt, this machine's QEMU
    driver embedded at ``qemu:///embed?root=DIR``, through the release's
    own ``LibvirtDriver.init_host``: for an image with
    ``hw_firmware_stateless=true`` and for the same UEFI image without it.
``{"op": "time", "variant": "stateless"|"plain", "stage": "query"|"full",
"count": N}``
    Seconds per request over N requests through one stage: ``query`` is
    the API's flavor and image validation, ``ImageMeta.from_dict``,
    ``RequestSpec.from_components``, ``ResourceRequest.from_request_spec``
    and ``to_querystring``; ``full`` adds ``blockinfo.get_disk_info`` and
    ``LibvirtDriver._get_guest_config(...).to_xml()``.
``{"op": "pair", "stage": "query"|"full", "count": N}``
    The same, N calls of each variant interleaved one by one; the mean
    seconds per request of each.
``{"op": "define"}``
    Define each variant's guest on that libvirt, and undefine it: whether
    this host's libvirt accepts the XML the release writes.
``{"op": "sync_setup", "url": URL, "nodes": [[NAME, UUID], ...],
"inventory": {...}, "traits": {TRAIT: BOOL}}``
    One ``SchedulerReportClient`` per compute node, talking HTTP to the
    placement at URL, as each nova-compute has its own.
``{"op": "sync"}``
    One periodic sync of every node: what the resource tracker's
    ``_update_to_placement`` does with placement (the provider subtree,
    the tree's allocations, the driver's inventory and capability traits
    put in the tree, ``update_from_provider_tree``).
``{"op": "set", "traits": {...}, "refresh": SECONDS}``
    Change the capability traits the nodes report, and/or
    ``[compute] resource_provider_association_refresh``.
"""

import json
import os
import sys
import time
import traceback

# The service's own start: monkey-patching (or not) as its nova-compute.
import nova.cmd.compute  # noqa: F401,I100


def _concurrency() -> str:
    if 'eventlet' in sys.modules:
        from eventlet import patcher
        if patcher.is_monkey_patched('thread'):
            return 'eventlet (monkey-patched, as its nova-compute)'
    return 'native threads (no eventlet, as its nova-compute)'


def _hello() -> dict:
    from nova.objects import image_meta
    import nova.version
    return {
        'version': nova.version.version_string(),
        'concurrency': _concurrency(),
        'test_modules': sorted(m for m in sys.modules
                               if m.startswith('nova.tests')),
        'stateless_field': 'hw_firmware_stateless' in
                           image_meta.ImageMetaProps.fields,
        'libvirt': _has_libvirt(),
    }


def _has_libvirt() -> bool:
    try:
        import libvirt  # noqa: F401
    except ImportError:
        return False
    return True


class Worker:

    def __init__(self) -> None:
        self.stages = {}
        self.info = {}
        self.driver = None
        self.clients = []
        self.inventory = {}
        self.capability_traits = {}

    # --- the request pipeline --------------------------------------------

    def pipeline(self, root: str, workdir: str) -> dict:
        from nova.compute import api as compute_api
        import nova.conf
        from nova import config
        from nova import context as nova_context
        from nova import objects
        from nova.scheduler import utils as scheduler_utils
        from nova.virt.libvirt import blockinfo
        from nova.virt.libvirt import driver as libvirt_driver
        from nova.virt import virtapi

        conf = nova.conf.CONF
        config.parse_args([], default_config_files=[], configure_db=False,
                          init_rpc=False)
        objects.register_all()
        conf.set_override('state_path', workdir)
        conf.set_override('instances_path',
                          os.path.join(workdir, 'instances'))
        conf.set_override('virt_type', 'qemu', group='libvirt')
        conf.set_override('connection_uri', 'qemu:///embed?root=%s' % root,
                          group='libvirt')
        # UEFI guests run on q35, the machine type this tree picks; an
        # operator of upstream sets it (upstream's default is 'pc').
        conf.set_override('hw_machine_type', ['x86_64=q35'],
                          group='libvirt')
        # As ComputeManager.init_host does before the driver's.
        for group in ('neutron', 'devices'):
            module = getattr(nova.conf, group, None)
            if hasattr(module, 'register_dynamic_opts'):
                module.register_dynamic_opts(conf)
        # Some releases' init_host list the host's instances (29.4.0 to
        # register image property defaults), which nova-compute asks
        # nova-conductor for; an empty database of the release's own
        # schema gives the answer a new host gets.
        from nova.db import migration
        conf.set_override(
            'connection', 'sqlite:///%s' % os.path.join(workdir, 'nova.db'),
            group='database')
        migration.db_sync(database='main')
        drvr = libvirt_driver.LibvirtDriver(virtapi.VirtAPI(), False)
        drvr.init_host('bench')
        self.driver = drvr

        ctxt = nova_context.get_admin_context()
        flavor = objects.Flavor(
            id=1, name='bench.tiny', flavorid='bench.tiny', memory_mb=256,
            vcpus=1, root_gb=1, ephemeral_gb=0, swap=0, rxtx_factor=1.0,
            vcpu_weight=None, extra_specs={})
        for variant, stateless in (('stateless', True), ('plain', False)):
            properties = {'hw_firmware_type': 'uefi'}
            if stateless:
                properties['hw_firmware_stateless'] = 'true'
            image = {
                'id': 'b3a1d6f0-6a36-4c55-9a7e-2f0a8a3c1d42', 'name': 'bench',
                'status': 'active', 'disk_format': 'qcow2',
                'container_format': 'bare', 'min_ram': 0, 'min_disk': 0,
                'size': 0, 'properties': properties,
            }
            instance = objects.Instance(
                id=1, uuid='6f1e5d2c-3b4a-4c8d-9e0f-1a2b3c4d5e6f',
                flavor=flavor, image_ref=image['id'], system_metadata={},
                project_id='demo', user_id='demo', display_name='bench',
                memory_mb=256, vcpus=1, root_gb=1, ephemeral_gb=0,
                pci_devices=objects.PciDeviceList(), numa_topology=None,
                config_drive=None, vm_mode=None, kernel_id=None,
                ramdisk_id=None, os_type='linux', ephemeral_key_uuid=None,
                vcpu_model=None, host='bench', node='bench',
                trusted_certs=None, resources=None, migration_context=None,
                info_cache=None, old_flavor=None, new_flavor=None,
                task_state=None, vm_state=None)
            self.stages[variant] = self._stages(
                ctxt, conf, compute_api, objects, scheduler_utils, blockinfo,
                drvr, flavor, image, instance)
        info = {}
        for variant, (_query, full) in self.stages.items():
            query, xml = full()
            info[variant] = {'query': query, 'xml_bytes': len(xml),
                             'xml': xml}
        return info

    @staticmethod
    def _stages(ctxt, conf, compute_api, objects, scheduler_utils,
                blockinfo, drvr, flavor, image, instance):
        def query():
            compute_api.API._validate_flavor_image_nostatus(
                ctxt, image, flavor, None)
            image_meta = objects.ImageMeta.from_dict(image)
            spec = objects.RequestSpec.from_components(
                ctxt, instance.uuid, image_meta, flavor, None, None, {},
                None, None)
            querystring = scheduler_utils.ResourceRequest.from_request_spec(
                spec).to_querystring()
            return querystring, image_meta

        def full():
            querystring, image_meta = query()
            disk_info = blockinfo.get_disk_info(
                conf.libvirt.virt_type, instance, image_meta)
            xml = drvr._get_guest_config(
                instance, [], image_meta, disk_info).to_xml()
            return querystring, xml

        return query, full

    def define(self) -> dict:
        """Define (and undefine) each variant's guest on its libvirt.

        Whether this libvirt accepts the XML the release writes; nothing
        is started.
        """
        import libvirt
        conn = self.driver._host.get_connection()
        answers = {}
        for variant, (_query, full) in self.stages.items():
            _querystring, xml = full()
            try:
                domain = conn.defineXML(xml)
            except Exception as ex:
                answers[variant] = 'refused: %s' % ex
                continue
            domain.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_NVRAM)
            answers[variant] = 'accepted'
        return answers

    def _func(self, variant: str, stage: str):
        query, full = self.stages[variant]
        return query if stage == 'query' else full

    def time(self, variant: str, stage: str, count: int) -> dict:
        func = self._func(variant, stage)
        start = time.perf_counter()
        for _ in range(count):
            func()
        return {'seconds': (time.perf_counter() - start) / count}

    def pair(self, stage: str, count: int) -> dict:
        """Stateless and plain calls interleaved one by one; means of each.
        """
        first = self._func('stateless', stage)
        second = self._func('plain', stage)
        clock = time.perf_counter
        totals = [0.0, 0.0]
        for i in range(count):
            order = (0, 1) if i % 2 == 0 else (1, 0)
            for side in order:
                t0 = clock()
                (first if side == 0 else second)()
                totals[side] += clock() - t0
        return {'stateless': totals[0] / count, 'plain': totals[1] / count}

    # --- the periodic sync -----------------------------------------------

    def sync_setup(self, url: str, nodes: list, inventory: dict,
                   traits: dict) -> dict:
        from keystoneauth1 import adapter as ks_adapter
        from keystoneauth1 import session as ks_session
        from keystoneauth1 import token_endpoint
        from nova import context as nova_context
        from nova.scheduler.client import report

        self.context = nova_context.get_admin_context()
        self.inventory = inventory
        self.capability_traits = traits
        self.clients = []
        for name, uuid in nodes:
            # Placement without keystone (noauth2) wants this token.
            adapter = ks_adapter.Adapter(
                ks_session.Session(auth=token_endpoint.Token(url, 'admin')),
                service_type='placement', endpoint_override=url,
                raise_exc=False)
            self.clients.append((name, uuid,
                                 report.SchedulerReportClient(adapter)))
        return {}

    def sync(self) -> dict:
        seconds = []
        for name, uuid, client in self.clients:
            start = time.perf_counter()
            # What this release's resource tracker calls (the subtree
            # since 2025.2, the whole tree before).
            ensure = getattr(client, 'get_provider_subtree_and_ensure_root',
                             client.get_provider_tree_and_ensure_root)
            tree = ensure(self.context, uuid, name=name)
            client.get_allocations_for_provider_tree(self.context, name)
            # What a driver's update_provider_tree and the resource
            # tracker's capability traits do to the node: this tree's
            # driver's inventory and traits, so both sides hold the same.
            tree.update_inventory(name, self.inventory)
            traits = set(tree.data(name).traits)
            traits |= {t for t, on in self.capability_traits.items() if on}
            traits -= {t for t, on in self.capability_traits.items()
                       if not on}
            tree.update_traits(name, traits)
            client.update_from_provider_tree(self.context, tree)
            seconds.append(time.perf_counter() - start)
        return {'seconds': seconds}

    def set(self, traits: dict | None = None,
            refresh: float | None = None) -> dict:
        import nova.conf
        if traits is not None:
            self.capability_traits = traits
        if refresh is not None:
            nova.conf.CONF.set_override(
                'resource_provider_association_refresh', refresh,
                group='compute')
        return {}


def main() -> int:
    try:
        hello = _hello()
    except Exception as ex:
        print(json.dumps({'error': '%s: %s' % (type(ex).__name__, ex)}))
        return 1
    print(json.dumps(hello))
    sys.stdout.flush()
    worker = Worker()
    for line in sys.stdin:
        request = json.loads(line)
        op = request.pop('op')
        try:
            answer = getattr(worker, op)(**request)
        except Exception as ex:
            traceback.print_exc()
            answer = {'error': '%s: %s' % (type(ex).__name__, ex)}
        print(json.dumps(answer))
        sys.stdout.flush()
    return 0


if __name__ == '__main__':
    code = main()
    sys.stdout.flush()
    # The release's libvirt event loop runs in a native thread that never
    # ends; once the benchmark closes standard input there is nothing
    # left to do, so do not wait for it.
    os._exit(code)
