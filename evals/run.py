"""``python -m evals.run [OPTIONS]``: the same as ``gpudoc eval [OPTIONS]``, kept for older instructions."""

from __future__ import annotations

import sys

from gpudoc.cli import main

if __name__ == "__main__":
    sys.exit(main(["eval", *sys.argv[1:]]))
