"""`python -m rampart` is the `rampart` command."""

from rampart.cli import app

app(prog_name="rampart")
