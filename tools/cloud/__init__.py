"""An all-in-one OpenStack cloud on a patched Nova release.

``python3 -m tools.cloud RELEASE`` (``tox -e cloud-RELEASE``) installs and
starts a cloud of real services on this host (see :mod:`tools.cloud.run`),
boots stateless and stateful UEFI guests through the ``openstack`` client,
prints what it saw, and tears it all down. Nothing it creates lives in the
tracked tree: virtualenvs, configuration and logs go under
``.tox/cloud/``.

One module a concern: :mod:`~tools.cloud.system` (MariaDB, RabbitMQ,
libvirt), :mod:`~tools.cloud.install` (the virtualenvs),
:mod:`~tools.cloud.config` (the configuration files),
:mod:`~tools.cloud.services` (the OpenStack services),
:mod:`~tools.cloud.processes` (PIDs), :mod:`~tools.cloud.scenario`,
:mod:`~tools.cloud.evidence` and :mod:`~tools.cloud.run` (the command).
"""
