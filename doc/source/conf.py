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

# The small extensions of this documentation live in doc/ext.
sys.path.insert(0, os.path.abspath(os.path.join('..', 'ext')))

# -- General configuration ---------------------------------------------------

extensions = [
    'oslo_config.sphinxext',
    'oslo_config.sphinxconfiggen',
    'cli_reference',
    'nova_errors',
    'support_matrix',
]

# oslo_config.sphinxconfiggen: write the sample configuration file from the
# same generator configuration as 'tox -e genconfig', so that the sample in
# the documentation is the one operators would generate.
config_generator_config_file = '../../etc/nova/nova-config-generator.conf'
sample_config_basename = '_generated/nova'

# nova_errors: the bases no code raises as such.
nova_errors_exclude = ['NovaException', 'Invalid', 'NotFound', 'Conflict']

source_suffix = {'.rst': 'restructuredtext'}
master_doc = 'index'
exclude_patterns = ['_build']

project = 'Nova: stateless UEFI firmware'
copyright = 'OpenStack Foundation'

# Any ``text`` without a role is a literal, as in the rest of OpenStack.
default_role = 'literal'

pygments_style = 'sphinx'
# Literal blocks (``::``) are commands, messages and output: not Python.
# Blocks in another language say so with ``.. code-block::``.
highlight_language = 'none'

# -- Options for HTML output -------------------------------------------------

html_theme = 'alabaster'
html_static_path = ['_static']
html_css_files = ['support-matrix.css']
html_theme_options = {
    'description': 'Stateless UEFI firmware for the libvirt driver',
    # Room for the support matrix, one column per driver.
    'page_width': '1280px',
    'sidebar_width': '240px',
    'body_max_width': 'none',
}
