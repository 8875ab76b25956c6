from lookalike.cli import main

# Guarded: spawned helper processes (lookalike.face_parallel) re-import the main module.
if __name__ == "__main__":
    raise SystemExit(main())
