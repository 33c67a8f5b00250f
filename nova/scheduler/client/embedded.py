"""Placement served inside the Nova process, without HTTP or a deployment.

``EmbeddedPlacement`` loads the real openstack-placement WSGI application on
a database of its own (in-memory SQLite by default) and hands out a
keystoneauth ``Adapter`` whose requests wsgi-intercept routes into that
application. Everything above the adapter (the report client, the
scheduler) is the code that talks to a real placement over HTTP.

Limitations, all of them process-wide because placement and the libraries it
builds on keep global state:

* Only one embedded placement can run at a time in a process. Placement's
  database objects use one module-level transaction context; it is pointed at
  this instance's database while it runs and restored on ``stop``.
* While it runs, ``keystoneauth1.session.Session.get_endpoint`` is replaced
  for *every* keystoneauth session in the process (placement's
  ``PlacementDirect`` does this to skip the service catalog). Another
  keystoneauth client in the same process then resolves its endpoint to the
  embedded placement unless it sets ``endpoint_override``.
* Requests are served one at a time: an in-memory SQLite database lives in a
  single connection, which must not run two transactions at once.
* The in-memory database, and every provider in it, is gone after ``stop``;
  set ``[placement] embedded_connection`` to a file URL to keep it.
* oslo.db registers its ``[database]`` options on the global
  ``oslo_config.cfg.CONF`` when the engine starts, and takes from there the
  few engine settings placement's ``[placement_database]`` has no option
  for (their defaults, unless Nova's configuration sets them).
"""

import threading

from keystoneauth1 import adapter as ks_adapter
from oslo_config import cfg
from oslo_db.sqlalchemy import enginefacade
from oslo_log import log as logging
from placement import conf as placement_conf
from placement import db_api as placement_db
from placement import deploy as placement_deploy
from placement import direct as placement_direct
from placement.objects import resource_class as placement_rc
from placement.objects import trait as placement_trait
from placement import policy as placement_policy

from nova import exception

LOG = logging.getLogger(__name__)

# Held by the running instance, so that a second one fails loudly instead of
# silently sharing (or replacing) the first one's database.
_RUNNING = threading.Lock()


class _SerializedApp:
    """A WSGI application that serves one request at a time.

    The whole response is produced under the lock, so no database work of
    one request can interleave with another's on the shared connection.
    """

    def __init__(self, app) -> None:
        self._app = app
        self._lock = threading.Lock()

    def __call__(self, environ, start_response):
        with self._lock:
            return list(self._app(environ, start_response))


def _placement_config(connection: str) -> cfg.ConfigOpts:
    """Build placement's own configuration, apart from Nova's ``CONF``."""
    conf = cfg.ConfigOpts()
    placement_conf.register_opts(conf)
    # The connection option is required; give it a value before parsing so
    # parsing an empty command line succeeds without a config file.
    conf.set_default('connection', connection, group='placement_database')
    conf([], project='placement', default_config_files=[])
    conf.set_override('connection', connection, group='placement_database')
    # Create the schema on start: an in-memory database starts empty.
    conf.set_override('sync_on_startup', True, group='placement_database')
    return conf


def _transaction_context(conf: cfg.ConfigOpts):
    """A database transaction context for placement's options.

    ``sync_on_startup`` is placement's own option, not one of oslo.db's
    engine options, so it is left out.
    """
    context = enginefacade.transaction_context()
    context.configure(**{key: value
                         for key, value in conf.placement_database.items()
                         if key != 'sync_on_startup'})
    return context


def _forget_placement_process_state() -> None:
    """Make placement treat the next database as one it has never seen.

    Placement syncs the standard traits and resource classes into its
    database once per process and then remembers that it did; a new database
    would be left without them. Its policy enforcer is also cached with the
    configuration it was first built from.
    """
    placement_trait._TRAITS_SYNCED = False
    placement_rc._RESOURCE_CLASSES_SYNCED = False
    placement_policy.reset()


class EmbeddedPlacement:
    """Run placement in this process; use as a context manager.

    ``with EmbeddedPlacement(CONF) as adapter:`` yields a keystoneauth
    ``Adapter`` (``raise_exc=False``) on a fresh placement. ``start`` and
    ``stop`` do the same for callers that cannot use a ``with`` block.

    ``wsgi_app`` is the placement WSGI application while it runs, to serve
    the same placement over real HTTP as well (a test of a client's HTTP
    path runs it in a WSGI server).
    """

    def __init__(self, conf: cfg.ConfigOpts) -> None:
        self._connection = conf.placement.embedded_connection
        self._direct = None
        self._db_context = None
        self._undo_db_patch = None
        self.adapter: ks_adapter.Adapter | None = None
        self.wsgi_app = None

    def start(self) -> ks_adapter.Adapter:
        """Load placement on its database and return an adapter to it.

        :raises EmbeddedPlacementAlreadyRunning: if another instance runs.
        :raises EmbeddedPlacementStartFailed: if placement cannot start,
            e.g. on a database URL it cannot use.
        """
        if not _RUNNING.acquire(blocking=False):
            raise exception.EmbeddedPlacementAlreadyRunning()
        try:
            self._start()
        except Exception as e:
            self._teardown()
            raise exception.EmbeddedPlacementStartFailed(reason=e) from e
        LOG.debug('Embedded placement started on %s', self._direct.url)
        return self.adapter

    def _start(self) -> None:
        conf = _placement_config(self._connection)
        self._db_context = _transaction_context(conf)
        self._undo_db_patch = (
            placement_db.placement_context_manager.patch_factory(
                self._db_context))
        _forget_placement_process_state()
        # PlacementDirect switches placement to no authentication (requests
        # are made as admin) on ``conf``, so it is built before the app.
        self._direct = placement_direct.PlacementDirect(conf)
        app = _SerializedApp(placement_deploy.loadapp(conf))
        # wsgi-intercept asks for the application on every new connection,
        # which through requests means every request, and PlacementDirect
        # would load placement anew (migration check, trait sync) each
        # time: hand it the one loaded above.
        self._direct.app = lambda: app
        self.wsgi_app = app
        self.adapter = self._direct.__enter__()

    def stop(self) -> None:
        """Stop serving and undo every process-wide change of ``start``."""
        if self._undo_db_patch is None:
            return
        self._teardown()
        LOG.debug('Embedded placement stopped')

    def _teardown(self) -> None:
        try:
            if self.adapter is not None:
                self._direct.__exit__(None, None, None)
            if self._db_context is not None:
                # Closing the pool closes the in-memory database's only
                # connection, which frees the database.
                self._db_context.dispose_pool()
            if self._undo_db_patch is not None:
                self._undo_db_patch()
            _forget_placement_process_state()
        finally:
            self.adapter = None
            self.wsgi_app = None
            self._direct = None
            self._db_context = None
            self._undo_db_patch = None
            _RUNNING.release()

    def __enter__(self) -> ks_adapter.Adapter:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()
