"""Which placement ``nova-firmware`` talks to, and whether it is one.

Placement runs embedded in the process unless ``--placement-url`` (or the
configuration) points at a deployment over HTTP. Before the flow uses it,
``probe_placement`` checks that what answers there is placement and lets
the tool in, and says what is wrong when not: a wrong URL, missing
credentials, a web server that is something else.
"""

from urllib import parse

from keystoneauth1 import adapter as ks_adapter
from keystoneauth1 import exceptions as ks_exc

import nova.conf
from nova import exception
from nova.scheduler.client import report

CONF = nova.conf.CONF

#: The ``auth_type`` used for ``--placement-url`` when the configuration
#: gives none: keystoneauth's plugin without credentials.
DEFAULT_HTTP_AUTH_TYPE = 'none'
#: Seconds placement has to answer one request, unless ``[placement]
#: timeout`` says otherwise: keystoneauth waits forever by default, and a
#: service that accepts connections and never answers would hang the tool.
DEFAULT_PLACEMENT_TIMEOUT = 60
#: In-memory SQLite: an embedded placement that ends with the process.
_IN_MEMORY_DATABASES = ('sqlite://', 'sqlite:///:memory:')


def configure_placement(url: str | None) -> None:
    """Point ``[placement]`` at ``url`` over HTTP (``--placement-url``).

    Credentials stay those of the configuration; with none, requests go
    without any.
    """
    CONF.set_default('timeout', DEFAULT_PLACEMENT_TIMEOUT,
                     group='placement')
    if url is None:
        return
    CONF.set_override('embedded', False, group='placement')
    CONF.set_override('endpoint_override', url, group='placement')
    if CONF.placement.auth_type is None:
        CONF.set_override('auth_type', DEFAULT_HTTP_AUTH_TYPE,
                          group='placement')


def _without_password(url: str) -> str:
    parts = parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = '%s:***@%s' % (parts.username or '',
                            parts.netloc.rpartition('@')[2])
    return parse.urlunsplit(parts._replace(netloc=netloc))


def persistent_placement() -> str | None:
    """The placement whose data outlives this process, as a run records
    it; None for an embedded one in memory.
    """
    if CONF.placement.embedded:
        connection = CONF.placement.embedded_connection
        if connection in _IN_MEMORY_DATABASES:
            return None
        return 'embedded (%s)' % _without_password(connection)
    return CONF.placement.endpoint_override or 'from the service catalog'


def placement_description() -> str:
    """Which placement ``[placement]`` selects, without secrets."""
    if CONF.placement.embedded:
        return 'embedded (%s)' % _without_password(
            CONF.placement.embedded_connection)
    return '%s (auth_type %s)' % (
        CONF.placement.endpoint_override or 'from the service catalog',
        CONF.placement.auth_type)


def _error_detail(resp) -> str:
    try:
        return resp.json()['errors'][0]['detail']
    except (ValueError, KeyError, IndexError, TypeError):
        return resp.text


def _not_placement(resp, request: str, expected: str) -> Exception:
    text = ' '.join(resp.text.split())
    if len(text) > 80:
        text = text[:77] + '...'
    return exception.PlacementAPIConnectFailure(
        reason='%s answered %d with %s, not %s; is %s a placement '
               'service?' % (request, resp.status_code,
                             repr(text) if text else 'an empty body',
                             expected, CONF.placement.endpoint_override or
                             'the endpoint of the service catalog'))


def _version_document(resp) -> tuple[str, str]:
    """The microversion range of placement's ``GET /`` answer."""
    expected = ('its version document {"versions": [{"min_version": ..., '
                '"max_version": ...}]}')
    try:
        version = resp.json()['versions'][0]
        versions = version['min_version'], version['max_version']
    except (ValueError, KeyError, IndexError, TypeError):
        raise _not_placement(resp, 'GET /', expected)
    if not all(isinstance(v, str) for v in versions):
        raise _not_placement(resp, 'GET /', expected)
    return versions


def _provider_uuids(resp) -> list[str]:
    """The provider UUIDs of a ``GET /resource_providers`` answer."""
    expected = 'a list of resource providers {"resource_providers": [...]}'
    try:
        uuids = [rp['uuid'] for rp in resp.json()['resource_providers']]
    except (ValueError, KeyError, TypeError):
        raise _not_placement(resp, 'GET /resource_providers', expected)
    return uuids


def probe_placement(adapter: ks_adapter.Adapter, nodename: str) -> dict:
    """Check placement answers, and lets us in, before using it.

    The version document needs no credentials; listing providers does, so
    missing or wrong credentials are reported here, with what to do about
    them, rather than as a failure to read a provider later on. Answers
    that are not placement's (a web server at the wrong URL) are reported
    as such.

    :raises nova.exception.PlacementAPIConnectFailure: placement cannot
        be reached, refuses the credentials or does not speak its API.
    """
    try:
        versions = adapter.get('/', raise_exc=False)
        providers = adapter.get(
            '/resource_providers?name=%s' % parse.quote(nodename, safe=''),
            microversion=report.PROVIDER_GET_VERSION, raise_exc=False)
    except ks_exc.ClientException as exc:
        raise exception.PlacementAPIConnectFailure(reason=exc) from exc
    if versions.status_code != 200:
        raise _not_placement(versions, 'GET /', 'its version document')
    min_version, max_version = _version_document(versions)
    if providers.status_code in (401, 403):
        raise exception.PlacementAPIConnectFailure(
            reason='placement refused the credentials (%d: %s); give them '
                   'in the [placement] section of a --config-file' % (
                       providers.status_code, _error_detail(providers)))
    found = (_provider_uuids(providers)
             if providers.status_code == 200 else [])
    return {
        'api_versions': '%s-%s' % (min_version, max_version),
        'compute_node': ('registered (%s)' % found[0] if found
                         else 'not registered yet'),
    }
