"""``python -m safer`` runs the ``safer`` command."""

from safer.cli import main

main()
