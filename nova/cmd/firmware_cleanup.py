"""``nova-firmware cleanup``: remove what earlier boots left.

Every boot writes down what it is about to create before it creates it
(``nova.cmd.firmware_state.RunRecords``) and removes the record once its
own cleanup is done. A record that is still there names what a killed run
(``kill -9`` included) or a guest kept with ``--keep`` left: its domain,
instance directory and placement allocation. ``cleanup``, and every boot
as it starts, removes them.
"""

import argparse
import contextlib
import dataclasses

from nova.cmd import firmware_common as common
from nova.cmd import firmware_placement as placement
from nova.cmd import firmware_report
from nova.cmd import firmware_state as state
import nova.conf
from nova import exception
from nova.scheduler.client import report
from nova.virt.libvirt import driver as libvirt_driver
from nova.virt.libvirt import guest as libvirt_guest
from nova.virt.libvirt import host as libvirt_host

CONF = nova.conf.CONF


@dataclasses.dataclass
class Removal:
    """What removing one earlier run's leftovers did."""

    removed: list[str] = dataclasses.field(default_factory=list)
    #: What could not be removed here, and what to do about it.
    left: list[str] = dataclasses.field(default_factory=list)


def _remove_domain(host: libvirt_host.Host, record: state.RunRecord,
                   removal: Removal) -> None:
    try:
        domain = host.get_domain(record.domain)
    except exception.InstanceNotFound:
        return
    if domain.UUIDString() != record.instance_uuid:
        removal.left.append(
            'domain %s is not the one the run created (UUID %s, not %s); '
            'left alone' % (record.domain, domain.UUIDString(),
                            record.instance_uuid))
        return
    guest = libvirt_guest.Guest(domain)
    running = guest.is_active()
    guest.poweroff()
    guest.delete_configuration(keep_nvram=False)
    removal.removed.append('%s domain %s (%s) %s' % (
        'running' if running else 'defined', record.domain,
        record.instance_uuid, record.describe()))


def remove_leftovers(records: state.RunRecords,
                     host: libvirt_host.Host,
                     client: report.SchedulerReportClient | None
                     ) -> Removal:
    """Remove what earlier runs with this state directory left.

    Runs killed before their cleanup (``kill -9`` included) and guests kept
    with ``--keep`` left a record (``STATE_DIR/runs``) naming their domain,
    instance directory and allocation. Each is removed where this run can
    reach it: a domain only on the same libvirt and only if its UUID is the
    instance's, an allocation only in the same persistent placement. A
    record goes once nothing it names is left.
    """
    total = Removal()
    here = placement.persistent_placement()
    for record in records.leftovers():
        removal = Removal()
        done = False
        try:
            if record.uri == host.uri:
                _remove_domain(host, record, removal)
            else:
                removal.left.append(
                    'domain %s %s is on %s; run %s --state-dir %s '
                    '--connection %s cleanup' % (
                        record.domain, record.describe(), record.uri,
                        common.PROG, records.state_dir, record.uri))
            if records.remove_instance_dir(record):
                removal.removed.append('instance directory %s' %
                                       record.instance_dir)
            if record.placement is not None:
                if record.placement == here and client is not None:
                    if client.delete_allocation_for_instance(
                            record.instance_uuid):
                        removal.removed.append(
                            'allocation of %s in placement %s' % (
                                record.instance_uuid, record.placement))
                else:
                    removal.left.append(
                        'allocation of %s in placement %s; this run uses '
                        '%s' % (record.instance_uuid, record.placement,
                                here or 'an in-memory placement'))
            done = True
        finally:
            # Kept for the next run if anything is left or went wrong.
            records.end(record, remove=done and not removal.left)
        total.removed += removal.removed
        total.left += removal.left
    return total


def run(args: argparse.Namespace, out: firmware_report.Output,
        state_dir: str) -> int:
    """``nova-firmware cleanup``; returns the exit status."""
    records = state.RunRecords(state_dir)
    placement.configure_placement(args.placement_url)
    host = libvirt_driver.LibvirtDriver().host
    with contextlib.ExitStack() as stack:
        client = None
        if placement.persistent_placement() is not None:
            client = report.SchedulerReportClient(
                stack.enter_context(report.placement_client(CONF)))
        removal = remove_leftovers(records, host, client)
    code = common.EXIT_ERROR if removal.left else common.EXIT_OK
    document = {'removed': removal.removed, 'not_removed': removal.left}
    if out.as_json:
        out.json(dict(document, command='cleanup', exit_code=code,
                      warnings=out.warnings))
    elif removal.removed or removal.left:
        out.lines(firmware_report.render_fields(document))
    else:
        out.lines(['nothing left by earlier runs in %s' % state_dir])
    if removal.left:
        out.error('%d thing(s) could not be removed from here' %
                  len(removal.left))
    return code
