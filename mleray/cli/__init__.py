"""`mleray COMMAND`: the dispatcher (main.py) and one module per sub-command that is not a package's own."""
