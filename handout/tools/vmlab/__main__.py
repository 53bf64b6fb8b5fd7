"""`python -m vmlab` is the `vmlab` command."""

from .cli import main

main()
