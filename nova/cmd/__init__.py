"""Console scripts.

Their users are operators, not developers of the libraries they import:
eventlet announces its deprecation when oslo.messaging (which the versioned
objects import) loads it, in a warning nobody running a command can act on.
It is hidden unless warnings were asked for with ``-W`` or
``PYTHONWARNINGS``.
"""

import sys
import warnings

if not sys.warnoptions:
    warnings.filterwarnings('ignore', message=r'\s*Eventlet is deprecated')
