"""Loaded by pytest before anything imports the service; maintained by the template.

An update that left conflict markers in ``main.py`` would otherwise surface as the
SyntaxError of whatever imports it first. This reports every unresolved conflict, and
every ``.rej`` file, before the tests are even collected.
"""

import sys

from tests.cors.test_no_conflict_markers import unresolved

if problems := unresolved():
    sys.stderr.write(problems + "\n")
    raise SystemExit(1)
