"""`python -m labs` is the `lab` command."""

from labs.cli import main

main()
