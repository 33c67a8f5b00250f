"""Tests of the option definitions in ``nova.conf``."""

from nova.conf import opts
from nova import test

#: ``oslo-config-generator`` writes help as comments ("# ") in lines of
#: ``wrap_width`` = 79 characters (etc/nova/nova-config-generator.conf).
SAMPLE_HELP_WIDTH = 79 - len('# ')


class HelpTextTestCase(test.NoDBTestCase):

    def test_written_lines_fit_the_sample_file(self):
        # The generator wraps each line of a help text on its own, so a
        # line written a little too long leaves its last word alone on the
        # next line of nova.conf.sample. Help kept on one line (as
        # keystoneauth's) is wrapped whole, and is fine.
        too_long = []
        for group, group_opts in opts.list_opts():
            helps = [(str(group), getattr(group, 'help', None))]
            helps += [('%s.%s' % (group, opt.name), opt.help)
                      for opt in group_opts]
            for name, text in helps:
                if not text or '\n' not in text:
                    continue
                too_long += ['%s: %r' % (name, line)
                             for line in text.splitlines()
                             if len(line) > SAMPLE_HELP_WIDTH]
        self.assertEqual([], too_long)
