"""`mleray data push SUITE_OR_IDS URI`: uploads prepared MLE-bench competitions to an object store, once.

SUITE_OR_IDS is a suite name (configs/suites/<name>.yaml) or competition ids separated by commas. The
data is read from `$MLERAY_MLEBENCH_DATA_DIR` (where `mlebench prepare` put it) and written to
`URI/public/<id>/<digest>/` and `URI/private/<id>/<digest>/` with a manifest of sizes and sha256
checksums each; a competition already pushed with the same digest is skipped. A sweep with
`mlebench_data_uri=URI` makes its nodes stage from there (mleray.mlebench.data). Kaggle credentials
are needed only where `mlebench prepare` ran, never on a node.
"""

from __future__ import annotations

import argparse
import sys
from typing import List, Optional, Sequence

from mleray import competitions
from mleray.storage.backends import StorageError


def competition_ids(what: str) -> List[str]:
    """A suite's ids, or the comma-separated ids given; CompetitionError for an unknown suite."""
    if "," in what or competitions.get(what) is not None:
        return [cid for cid in (part.strip() for part in what.split(",")) if cid]
    return competitions.suite(what)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="mleray data", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    push = sub.add_parser("push", help="upload prepared MLE-bench competitions (public and private apart)")
    push.add_argument("what", metavar="SUITE_OR_IDS", help="a suite name, or competition ids separated by commas")
    push.add_argument("uri", metavar="URI", help="s3://bucket/prefix (any pyarrow filesystem URI, or a path)")
    args = parser.parse_args(argv)
    from mleray.mlebench import data

    try:
        ids = competition_ids(args.what)
        results = data.push(ids, args.uri, on_line=lambda line: print(line, flush=True))
    except (competitions.CompetitionError, StorageError) as err:
        print(f"mleray data: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # the object store refused a write, or the network went away
        from mleray.errors import one_line

        print(f"mleray data: pushing to {args.uri.split('?', 1)[0]} failed: {one_line(err)}", file=sys.stderr)
        return 1
    pushed = sum(not r["skipped"] for r in results)
    print(f"mleray data: {pushed} pushed, {len(results) - pushed} already there; run sweeps with "
          f"mlebench_data_uri={args.uri.split('?', 1)[0]}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
