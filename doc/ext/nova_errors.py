# Licensed under the Apache License, Version 2.0 (the "License"); you may
# not use this file except in compliance with the License. You may obtain
# a copy of the License at
#
#      http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS, WITHOUT
# WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied. See the
# License for the specific language governing permissions and limitations
# under the License.

"""Document the errors of ``nova.exception`` from the code itself.

Usage::

    .. nova-error:: StatelessFirmwareNotSupported

       What the reader should do about it.

renders the class name and its message format taken from ``msg_fmt``,
followed by the content. The message in the documentation is
thus always the one the code raises.

After reading, every ``NovaException`` subclass defined in
``nova.exception`` that no ``nova-error`` directive documents is reported
as a warning (so, with ``-W``, a build error): an error added to the code
must be explained to the people who will see it. Abstract bases are listed
in the ``nova_errors_exclude`` configuration value.
"""

import importlib
import inspect
import textwrap

from docutils import nodes
from sphinx.util import docutils as sphinx_docutils
from sphinx.util import logging

LOG = logging.getLogger(__name__)

EXCEPTION_MODULE = 'nova.exception'
BASE_CLASS = 'NovaException'
MESSAGE_WIDTH = 72


def exception_classes() -> dict[str, type]:
    """The NovaException subclasses defined in ``nova.exception``."""
    module = importlib.import_module(EXCEPTION_MODULE)
    base = getattr(module, BASE_CLASS)
    return {name: cls for name, cls in inspect.getmembers(module,
                                                          inspect.isclass)
            if issubclass(cls, base) and cls.__module__ == module.__name__}


def _documented(env) -> dict[str, str]:
    if not hasattr(env, 'nova_errors_documented'):
        env.nova_errors_documented = {}
    return env.nova_errors_documented


class NovaErrorDirective(sphinx_docutils.SphinxDirective):
    """``.. nova-error:: CLASS`` followed by what to do about it."""

    required_arguments = 1
    has_content = True

    def run(self) -> list[nodes.Node]:
        name = self.arguments[0]
        try:
            cls = exception_classes().get(name)
        except Exception as e:
            raise self.error('nova-error: cannot import %s: %s: %s' % (
                EXCEPTION_MODULE, type(e).__name__, e))
        if cls is None:
            raise self.error('nova-error: %s.%s is not a %s' % (
                EXCEPTION_MODULE, name, BASE_CLASS))
        self.assert_has_content()
        documented = _documented(self.env)
        # Entries of the document being read were purged before reading,
        # so any entry is a second directive for the same error.
        if name in documented:
            raise self.error('nova-error: %s is already documented in %s' % (
                name, documented[name]))
        documented[name] = self.env.docname

        item = nodes.definition_list_item()
        term = nodes.term()
        term += nodes.literal(name, name)
        item += term
        # An anchor, so that a message can be linked to: #error-NAME.
        item['ids'].append(nodes.make_id('error-' + name))
        definition = nodes.definition()
        # Wrapped for reading; the message itself is one line.
        message = textwrap.fill(str(cls.msg_fmt), MESSAGE_WIDTH,
                                break_on_hyphens=False)
        block = nodes.literal_block(message, message,
                                    classes=['nova-error-message'])
        block['language'] = 'none'
        definition += block
        definition.extend(self.parse_content_to_nodes())
        item += definition
        return [nodes.definition_list('', item, classes=['nova-errors'])]


def purge_doc(app, env, docname: str) -> None:
    documented = _documented(env)
    for name in [n for n, d in documented.items() if d == docname]:
        del documented[name]


def merge_info(app, env, docnames, other) -> None:
    _documented(env).update(_documented(other))


def check_coverage(app, env) -> None:
    try:
        classes = exception_classes()
    except Exception as e:
        LOG.warning('nova-error: cannot import %s: %s: %s',
                    EXCEPTION_MODULE, type(e).__name__, e)
        return
    documented = _documented(env)
    excluded = set(app.config.nova_errors_exclude)
    for name in sorted(set(classes) - set(documented) - excluded):
        LOG.warning('%s.%s is not documented: add a ".. nova-error:: %s" '
                    'saying what to do about it', EXCEPTION_MODULE, name,
                    name)


def setup(app):
    app.add_config_value('nova_errors_exclude', [], 'env')
    app.add_directive('nova-error', NovaErrorDirective)
    app.connect('env-purge-doc', purge_doc)
    app.connect('env-merge-info', merge_info)
    app.connect('env-check-consistency', check_coverage)
    return {
        'version': '1.0',
        'env_version': 1,
        'parallel_read_safe': True,
        'parallel_write_safe': True,
    }
