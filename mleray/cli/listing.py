"""`mleray list suites|agents|competitions`: what a sweep can name, and the folder each comes from."""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from mleray import paths

_PATTERNS = {"agents": "*.yaml", "suites": "*.yaml", "competitions": "*/config.yaml"}


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="mleray list", description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=sorted(_PATTERNS))
    paths.add_search_flags(parser)
    args = parser.parse_args(argv)
    paths.apply_search_flags(args)
    found = paths.names(args.kind, _PATTERNS[args.kind])
    width = max((len(name) for name in found), default=0)
    for name, path in found.items():
        folder = path.parent.parent if args.kind == "competitions" else path.parent
        print(f"{name:<{width}}  {folder}")
    print(f"({len(found)} {args.kind}; searched {paths.searched(args.kind)})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
