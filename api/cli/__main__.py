"""`python -m api.cli` runs the `atelier` command."""

from api.cli.main import app

app()
