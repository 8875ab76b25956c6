"""Build a product-search index: `python index_builder.py CATALOG --out INDEX_DIR [options]` (see --help).

The same command as `lookalike build`; kept at the top level, where the design card puts it.
"""

import argparse

from lookalike.cli.main import run
from lookalike.cli.products import add_build_arguments


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="index_builder.py", description="Build the product-search index of a catalog."
    )
    add_build_arguments(parser)
    args = parser.parse_args(argv)
    return run(args)


if __name__ == "__main__":
    raise SystemExit(main())
