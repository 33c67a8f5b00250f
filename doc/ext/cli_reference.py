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

"""Document a command line from its argparse parser.

Usage::

    .. cli-reference:: nova.cmd.firmware:build_parser
       :prog: nova-firmware

The directive imports ``MODULE:FUNCTION``, calls it to get an
``argparse.ArgumentParser`` and renders its usage, description, options and,
for each sub-command, a section with the same. Reading the parser rather than
copying its help into the documentation keeps the reference true to the
command: a new option shows up on the next build.

When the import or the call fails, the build reports an error at the
directive naming the target and the exception; it does not crash.
"""

import argparse
import dataclasses
import importlib
import textwrap
import typing as ty

from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.util import docutils as sphinx_docutils

#: Width of rendered usage lines, fixed so that the output does not depend
#: on the terminal the build runs in.
USAGE_WIDTH = 79


class CLIReferenceError(Exception):
    """The target cannot be loaded as a parser."""


def load_parser(target: str) -> argparse.ArgumentParser:
    """Import ``MODULE:FUNCTION`` and return the parser it builds."""
    module_name, sep, func_name = target.partition(':')
    if not sep or not module_name or not func_name:
        raise CLIReferenceError(
            '%r is not of the form MODULE:FUNCTION' % target)
    try:
        module = importlib.import_module(module_name)
        func = getattr(module, func_name)
        parser = func()
    except Exception as e:
        raise CLIReferenceError('cannot load %r: %s: %s' % (
            target, type(e).__name__, e)) from e
    if not isinstance(parser, argparse.ArgumentParser):
        raise CLIReferenceError('%r returned %r, not an ArgumentParser' % (
            target, type(parser).__name__))
    return parser


@dataclasses.dataclass
class Subcommand:
    name: str
    aliases: list[str]
    help: str | None
    parser: argparse.ArgumentParser


def subcommands(parser: argparse.ArgumentParser) -> list[Subcommand]:
    """The sub-commands of ``parser``, in the order they were added.

    Aliases map to the same parser; each sub-command is listed once, under
    its first name, with its aliases.
    """
    result: list[Subcommand] = []
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        helps = {a.dest: a.help for a in action._choices_actions}
        by_parser: dict[int, Subcommand] = {}
        for name, sub in action.choices.items():
            if id(sub) in by_parser:
                by_parser[id(sub)].aliases.append(name)
                continue
            by_parser[id(sub)] = Subcommand(name, [], helps.get(name), sub)
            result.append(by_parser[id(sub)])
    return result


def rename_prog(parser: argparse.ArgumentParser, prog: str) -> None:
    """Give ``parser`` and its sub-commands the program name ``prog``.

    Sub-parsers copy their parent's ``prog`` when they are added, which,
    unless the parser sets it, is the name of the running program:
    ``sphinx-build`` here.
    """
    old = parser.prog
    parser.prog = prog
    for command in subcommands(parser):
        sub = command.parser
        if sub.prog == old or sub.prog.startswith(old + ' '):
            sub.prog = prog + sub.prog[len(old):]


def usage(parser: argparse.ArgumentParser) -> str:
    try:
        formatter = parser.formatter_class(prog=parser.prog,
                                           width=USAGE_WIDTH)
    except TypeError:
        formatter = parser._get_formatter()
    formatter.add_usage(parser.usage, parser._actions,
                        parser._mutually_exclusive_groups, prefix='')
    return formatter.format_help().strip()


def invocation(parser: argparse.ArgumentParser,
               action: argparse.Action) -> str:
    """How an option is written: ``-c URI, --connection URI``."""
    return parser._get_formatter()._format_action_invocation(action)


def action_help(parser: argparse.ArgumentParser,
                action: argparse.Action) -> str:
    """The help of an option with ``%(default)s`` and the like filled in."""
    if not action.help:
        return ''
    try:
        text = parser._get_formatter()._expand_help(action)
    except (KeyError, TypeError, ValueError):
        # A stray '%' in the help: show it as written rather than fail.
        text = action.help
    if ('%(default)' not in action.help and action.nargs != 0 and
            action.default not in (None, argparse.SUPPRESS, '', [])):
        # Flags (nargs 0) have the obvious default of not being given, and
        # an empty default (``append``) is no value at all.
        text += ' Default: %s.' % (action.default,)
    return text


def documented_actions(group: argparse._ArgumentGroup
                       ) -> list[argparse.Action]:
    return [a for a in group._group_actions
            if a.help != argparse.SUPPRESS and
            not isinstance(a, (argparse._HelpAction,
                               argparse._SubParsersAction))]


def literal_block(text: str) -> nodes.literal_block:
    block = nodes.literal_block(text, text)
    # Usage lines and shell examples: nothing to highlight.
    block['language'] = 'none'
    return block


def text_blocks(text: str | None) -> list[nodes.Node]:
    """Paragraphs of a description or epilog; indented blocks (examples)
    are kept verbatim.
    """
    blocks = []
    for chunk in textwrap.dedent(text or '').strip().split('\n\n'):
        if not chunk.strip():
            continue
        lines = chunk.splitlines()
        if all(line.startswith((' ', '\t')) for line in lines if line):
            blocks.append(literal_block(textwrap.dedent(chunk)))
        else:
            blocks.append(nodes.paragraph(
                text=' '.join(line.strip() for line in lines)))
    return blocks


class CLIReferenceDirective(sphinx_docutils.SphinxDirective):
    """``.. cli-reference:: MODULE:FUNCTION``."""

    required_arguments = 1
    has_content = False
    option_spec = {
        'prog': directives.unchanged_required,
    }

    def run(self) -> list[nodes.Node]:
        target = self.arguments[0]
        try:
            parser = load_parser(target)
        except CLIReferenceError as e:
            raise self.error('cli-reference: %s' % e)
        module = importlib.import_module(target.partition(':')[0])
        if getattr(module, '__file__', None):
            self.env.note_dependency(module.__file__)
        if 'prog' in self.options:
            rename_prog(parser, self.options['prog'])

        result = self._parser_nodes(parser)
        # Options every command takes are described once, above; each
        # command's section names them.
        described = {
            tuple(action.option_strings)
            for group in parser._action_groups
            for action in documented_actions(group)}
        for command in subcommands(parser):
            result.append(self._subcommand_section(command, described))
        return result

    def _parser_nodes(self, parser: argparse.ArgumentParser,
                      described: ty.AbstractSet[tuple[str, ...]] = frozenset()
                      ) -> list[nodes.Node]:
        result: list[nodes.Node] = [literal_block(usage(parser))]
        result.extend(text_blocks(parser.description))
        for group in parser._action_groups:
            actions = documented_actions(group)
            if not actions:
                continue
            title = group.title.capitalize()
            if all(tuple(a.option_strings) in described for a in actions):
                para = nodes.paragraph(text=title + ': ')
                for i, action in enumerate(actions):
                    if i:
                        para += nodes.Text(', ')
                    para += nodes.literal(action.option_strings[-1],
                                          action.option_strings[-1])
                para += nodes.Text(', as described above.')
                result.append(para)
                continue
            result.append(nodes.rubric(text=title))
            result.append(self._options_list(parser, actions))
        result.extend(text_blocks(parser.epilog))
        return result

    def _options_list(self, parser: argparse.ArgumentParser,
                      actions: list[argparse.Action]
                      ) -> nodes.definition_list:
        dl = nodes.definition_list(classes=['cli-options'])
        for action in actions:
            item = nodes.definition_list_item()
            term = nodes.term()
            spelled = invocation(parser, action)
            term += nodes.literal(spelled, spelled)
            item += term
            definition = nodes.definition()
            definition += nodes.paragraph(text=action_help(parser, action))
            # Without a metavar the invocation already spells the choices.
            if (action.choices and action.metavar is not None and
                    not isinstance(action.choices, dict)):
                choices = ', '.join(str(c) for c in action.choices)
                definition += nodes.paragraph(text='Choices: ' + choices)
            item += definition
            dl += item
        return dl

    def _subcommand_section(self, command: Subcommand,
                            described: ty.AbstractSet[tuple[str, ...]]
                            ) -> nodes.section:
        parser = command.parser
        section = nodes.section()
        section['names'].append(parser.prog)
        self.state.document.note_implicit_target(section, section)
        section += nodes.title(text=parser.prog)
        if command.help and not parser.description:
            section += nodes.paragraph(text=command.help)
        if command.aliases:
            section += nodes.paragraph(
                text='Aliases: ' + ', '.join(command.aliases))
        section.extend(self._parser_nodes(parser, described))
        return section


def setup(app):
    app.add_directive('cli-reference', CLIReferenceDirective)
    return {
        'version': '1.0',
        'parallel_read_safe': True,
        'parallel_write_safe': True,
    }
