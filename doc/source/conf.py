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

"""Sphinx configuration of the documentation (``tox -e docs``)."""

import os
import sys

from docutils import nodes

# The small extensions of this documentation live in doc/ext.
sys.path.insert(0, os.path.abspath(os.path.join('..', 'ext')))

# -- General configuration ---------------------------------------------------

extensions = [
    'sphinx.ext.extlinks',
    'openstackdocstheme',
    'sphinx_feature_classification.support_matrix',
    'oslo_config.sphinxext',
    'oslo_config.sphinxconfiggen',
    'cli_reference',
    'nova_errors',
    'literal_breaks',
    'series_notes',
]

# oslo_config.sphinxconfiggen: write the sample configuration file from the
# same generator configuration as 'tox -e genconfig', so that the sample in
# the documentation is the one operators would generate.
config_generator_config_file = '../../etc/nova/nova-config-generator.conf'
sample_config_basename = '_generated/nova'

# :libvirt:`text <formatdomain.html#...>` links to libvirt's documentation.
extlinks = {
    'libvirt': ('https://libvirt.org/%s', None),
}

# nova_errors: the bases no code raises as such.
nova_errors_exclude = ['NovaException', 'Invalid', 'NotFound', 'Conflict']

source_suffix = {'.rst': 'restructuredtext'}
master_doc = 'index'
exclude_patterns = ['_build']

project = 'nova-stateless-firmware'
copyright = '2024-present, OpenStack Foundation'

# Any ``text`` without a role is a literal, as in the rest of OpenStack.
default_role = 'literal'

# Quotes stay as typed: attribute values in XML (stateless='yes') and
# commands are copied from the pages.
smartquotes = False

pygments_style = 'native'
# Literal blocks (``::``) are commands, messages and output: not Python.
# Blocks in another language say so with ``.. code-block::``.
highlight_language = 'none'

# -- Options for HTML output -------------------------------------------------

html_theme = 'openstackdocs'

# Small additions to the theme's style sheet.
html_static_path = ['_static']
html_css_files = ['nova-firmware.css']

# openstackdocstheme: the :nova-doc:, :glance-doc: and :placement-doc: roles
# link to those projects' documentation. This tree is not published from an
# OpenStack repository, so it names no repository and no bug tracker.
openstackdocs_projects = [
    'glance',
    'nova',
    'placement',
]

# -- Options for man page output ---------------------------------------------

# sphinx-build -b man: one page per command, in section 1.
man_pages = [
    ('cli/nova-firmware', 'nova-firmware',
     'check a compute host for stateless UEFI firmware and boot a stateless '
     'guest', [], 1),
]


def _man_page_links_as_text(app, doctree, docname):
    """In a man page, show links to other pages of this documentation as
    their text only: the page a ``#target`` or ``../page.html`` points at is
    not in the man page. (docutils 0.22's man page writer prints every
    link's target, whatever ``man_show_urls`` says.)
    """
    if app.builder.name != 'man':
        return
    for ref in list(doctree.findall(nodes.reference)):
        if not ref.get('refuri', '').startswith(('http:', 'https:')):
            ref.replace_self(nodes.inline('', '', *ref.children))


def setup(app):
    app.connect('doctree-resolved', _man_page_links_as_text)
