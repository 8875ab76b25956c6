from lookalike.cli.main import main

# Guarded: spawned helper processes (lookalike.faces.helpers) re-import the main module.
if __name__ == "__main__":
    raise SystemExit(main())
