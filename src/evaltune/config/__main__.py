"""``python -m evaltune.config``: print the config reference, or validate and show a config.

python -m evaltune.config --reference > docs/config-reference.md
python -m evaltune.config run.yaml training.learning_rate=1e-4   # resolved YAML, or errors

Config alone knows no grader, benchmark, bundle or policy names (``config.names``), so this
checks everything but those; ``evaltune run`` checks them too.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from evaltune.config.load import dump_config, load_config
from evaltune.config.reference import render_reference
from evaltune.errors import ConfigError


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evaltune.config", description=__doc__)
    parser.add_argument("--reference", action="store_true", help="print the Markdown reference")
    parser.add_argument("config", nargs="?", help="a YAML or JSON config to validate")
    parser.add_argument("overrides", nargs="*", help="dotted.key=value overrides")
    args = parser.parse_args(argv)
    if args.reference:
        sys.stdout.write(render_reference())
        return 0
    if not args.config:
        parser.error("give a config file, or --reference")
    try:
        sys.stdout.write(dump_config(load_config(args.config, args.overrides)))
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
