import sys

from tools.cloud import run

sys.exit(run.main())
