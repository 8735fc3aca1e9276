"""``python -m ripbench`` runs the command line."""

from .cli import main

main(prog_name="ripbench")
