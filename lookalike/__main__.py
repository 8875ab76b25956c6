from lookalike.cli.main import main

# Guarded: spawned helper processes (lookalike.faces.process_pool) re-import the main module.
if __name__ == "__main__":
    raise SystemExit(main())
