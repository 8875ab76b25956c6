"""lookalike's web app (the Hugging Face Spaces entry point): `python app.py [--share ...]`, the same
as `lookalike serve`; the code is in lookalike/app/."""

from lookalike.app.server import main

if __name__ == "__main__":
    main()
