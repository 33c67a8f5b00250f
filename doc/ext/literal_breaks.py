"""Let long names wrap at their separators, never mid-word.

Trait names, test ids and paths in the tables and notes are single words
of up to 125 characters (``COMPUTE_SECURITY_STATELESS_FIRMWARE``,
``nova.tests.functional...``). Left alone they widen the page beyond the
window; broken anywhere they split a word in two
(``COMPUTE_SECURITY_STATELES`` / ``S``). In the HTML output this offers a
break (``<wbr>``) after each ``_``, ``.``, ``/`` and ``-`` of such a long
word, in text and inline literals alike, and the style sheet lets inline
literals wrap there and nowhere else.
"""

import re

#: The text between two tags: never inside a tag or an attribute value.
_TEXT = re.compile(r'>([^<]+)<')
#: A word long enough to matter, made of name characters and separators.
_LONG_WORD = re.compile(r'[\w./:-]{24,}')
_SEPARATOR = re.compile(r'([_./-])(?=\w)')


def _break_word(match: re.Match) -> str:
    return _SEPARATOR.sub(r'\1<wbr>', match.group(0))


def _break_text(match: re.Match) -> str:
    return '>' + _LONG_WORD.sub(_break_word, match.group(1)) + '<'


def add_breaks(app, pagename, templatename, context, doctree) -> None:
    body = context.get('body')
    if body:
        context['body'] = _TEXT.sub(_break_text, body)


def setup(app):
    app.connect('html-page-context', add_breaks)
    return {'parallel_read_safe': True, 'parallel_write_safe': True}
