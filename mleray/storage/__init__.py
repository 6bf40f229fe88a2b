"""Where a sweep's results go: storage backends (local paths, pyarrow file systems, object stores) and the
sweep store (config.yaml and the appended trials.jsonl) on top of them."""
