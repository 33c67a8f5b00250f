"""Several UEFI guests spawned and destroyed at once on one host.

A compute service builds and deletes instances in parallel threads. Each
guest must get its own firmware mode and, when stateful, its own variable
store: no store shared, none left to a stateless guest, none left behind.
"""

import concurrent.futures
import os

from nova.tests.functional.libvirt import base

#: Two of each: 4 guests under TCG on 2 cores still reach their firmware
#: well inside the boot timeout.
MODES = (True, False, True, False)


class ConcurrencyTestCase(base.LibvirtBootTestCase):

    def _run_all(self, func, items) -> list:
        with concurrent.futures.ThreadPoolExecutor(len(items)) as pool:
            return list(pool.map(func, items))

    def test_concurrent_spawn_and_destroy(self):
        instances = [self.create_instance(base.make_image(stateless=mode))
                     for mode in MODES]

        def spawn(instance):
            self.driver.spawn(self.context, instance, instance.image_meta)
            return self.wait_for_firmware(instance)

        self._run_all(spawn, instances)

        names = [instance.name for instance in instances]
        self.assertEqual(len(names), len(set(names)))
        stores = []
        for instance, stateless in zip(instances, MODES):
            self.assert_running(instance)
            if stateless:
                self.assert_stateless(instance)
            else:
                nvram = self.assert_stateful(instance)
                self.assertEqual(instance.name + '_VARS.fd',
                                 os.path.basename(nvram))
                stores.append(nvram)
        self.assertEqual(len(stores), len(set(stores)))
        self.assertEqual(sorted(stores), sorted(
            path for instance in instances
            for path in self.nvram_files(instance)))

        self._run_all(
            lambda instance: self.driver.destroy(self.context, instance),
            instances)

        for instance in instances:
            self.assert_gone(instance)
        self.assertEqual([], self.driver.list_instances())
