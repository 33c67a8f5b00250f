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

"""Sphinx configuration of the release notes (``tox -e releasenotes``).

reno reads the notes from the git history of the repository, so a note
appears here once it is committed, under the version of the first tag
that contains it.
"""

extensions = [
    'openstackdocstheme',
    'reno.sphinxext',
]

source_suffix = {'.rst': 'restructuredtext'}
master_doc = 'index'
exclude_patterns = ['_build']

project = 'nova-stateless-firmware release notes'
copyright = '2024-present, OpenStack Foundation'

pygments_style = 'native'
# Literal blocks in the notes are commands and output: not Python.
highlight_language = 'none'

html_theme = 'openstackdocs'
html_use_index = False
