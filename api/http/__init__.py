"""The HTTP producer: a FastAPI app (`api.http.app:create_app`) and the gallery page.

Importing this package loads nothing heavy, so the CLI can reuse its read-side views.
"""
