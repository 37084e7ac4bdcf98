"""The HTTP producer: a FastAPI app (`api.http.app:create_app`) and the gallery page."""
