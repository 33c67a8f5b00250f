import sys

from tools.series import run

sys.exit(run.main())
