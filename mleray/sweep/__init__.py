"""The driver: trials expanded from the config, the scheduler, placement, callbacks and the live view.

Runs on the machine that runs `python -m mleray.sweep` (driver.py). Kept import-free so a trial's actor
can read `mleray.sweep.trials` (the TrialJob it is handed) without loading the driver."""
