"""`python -m mleray.sweep`: the sweep command (mleray.sweep.driver)."""

import sys

from mleray.sweep.driver import main

sys.exit(main())
