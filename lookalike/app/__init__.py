"""lookalike's web app: product search and face verification in one Gradio Blocks page.

Started by `lookalike serve` or the root `app.py` (the Hugging Face Spaces entry point), both through
`server`. One module per job: `uploads` reads what users send, `services` loads the models once,
`products` and `faces` handle each tab, `layout` builds the page, `api` adds the JSON API.
Only `server` is importable without Gradio (installed by the `app` extra); nothing here is imported
by the rest of the package, except the `serve` command.
"""
