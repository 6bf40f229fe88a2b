"""Analysis of mleray sweeps and MLE-bench grading reports.

One job per module:

- `load`     — sweep directories (`trials.jsonl`) and grading report JSONs → one DataFrame, a row per trial
- `splits`   — which competitions a split (low/medium/high/all, a suite, a file) holds; known issues
- `tables`   — MLE-bench's seed aggregation: medal rates mean ± SEM per split, with what is missing; the sweep summary
- `passk`    — the unbiased pass@k estimator
- `scaling`  — any-medal rate vs elapsed time (snapshots); ablations per tier or any varying field
- `cost`     — CPU-hours and GPU-hours per trial, agent and medal
- `figures`  — matplotlib (Agg) PNG + SVG figures
- `report`   — every table in one place, `report.md`, `write_report(sweep_dir)`

`python -m analysis PATH... [--split NAME] [--pad-missing] [--json] [--out DIR]`.
"""
