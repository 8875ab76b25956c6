"""Build a product-search index: `python index_builder.py CATALOG --out INDEX_DIR [options]` (see --help)."""

from lookalike.index_build import main

if __name__ == "__main__":
    raise SystemExit(main())
