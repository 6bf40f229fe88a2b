"""`python -m mleray COMMAND ...`."""

import sys

from mleray.cli.main import main

sys.exit(main())
