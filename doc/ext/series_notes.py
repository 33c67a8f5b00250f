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

"""Render the release notes a patch series adds, from its patch files.

Usage::

    .. series-release-notes:: 2024.1

reads ``series/2024.1/series`` for the patches in order, takes from each
the reno notes it adds (``releasenotes/notes/*.yaml``) and renders them
by section, as reno renders a release: the page shows exactly what a
cloud that applies the series gets in its release notes.
"""

import os

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.util.docutils import SphinxDirective
import yaml

#: reno's sections, in the order reno renders them.
SECTIONS = (
    ('prelude', 'Prelude'), ('features', 'New Features'),
    ('issues', 'Known Issues'), ('upgrade', 'Upgrade Notes'),
    ('deprecations', 'Deprecation Notes'),
    ('critical', 'Critical Issues'), ('security', 'Security Issues'),
    ('fixes', 'Bug Fixes'), ('other', 'Other Notes'))


def added_notes(patch_text: str) -> list[str]:
    """The text of each reno note a patch adds, in the patch's order."""
    notes, current = [], None
    for line in patch_text.splitlines():
        if line.startswith('+++ '):
            path = line[len('+++ b/'):]
            current = ([] if path.startswith('releasenotes/notes/')
                       and path.endswith('.yaml') else None)
            if current is not None:
                notes.append(current)
        elif line.startswith('diff --git ') or line == '-- ':
            current = None
        elif current is not None and line.startswith('+'):
            current.append(line[1:])
    return ['\n'.join(lines) + '\n' for lines in notes]


class SeriesReleaseNotes(SphinxDirective):
    required_arguments = 1

    def run(self) -> list[nodes.Node]:
        top = os.path.join(self.env.srcdir, '..', '..', 'series',
                           self.arguments[0])
        order = os.path.join(top, 'series')
        self.env.note_dependency(os.path.abspath(order))
        sections: dict[str, list[str]] = {}
        with open(order, encoding='utf-8') as f:
            patches = [p.strip() for p in f
                       if p.strip() and not p.startswith('#')]
        for patch in patches:
            path = os.path.join(top, patch)
            self.env.note_dependency(os.path.abspath(path))
            with open(path, encoding='utf-8') as f:
                for text in added_notes(f.read()):
                    for key, value in (yaml.safe_load(text) or {}).items():
                        items = [value] if isinstance(value, str) else value
                        sections.setdefault(key, []).extend(items)
        lines = []
        for key, title in SECTIONS:
            if key not in sections:
                continue
            lines += ['.. rubric:: %s' % title, '']
            for item in sections[key]:
                if key == 'prelude':
                    lines += item.splitlines() + ['']
                    continue
                body = item.rstrip('\n').splitlines()
                lines.append('* ' + body[0])
                lines += ['  ' + b if b else '' for b in body[1:]]
                lines.append('')
        unknown = sorted(set(sections) - {k for k, _t in SECTIONS})
        if unknown:
            raise self.error('series %s: unknown reno sections %s' % (
                self.arguments[0], ', '.join(unknown)))
        node = nodes.container()
        self.state.nested_parse(StringList(lines, source=order), 0, node)
        return node.children


def setup(app):
    app.add_directive('series-release-notes', SeriesReleaseNotes)
    return {'parallel_read_safe': True, 'parallel_write_safe': True}
