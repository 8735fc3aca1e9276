"""``python -m ripbench ...`` (and ``accelerate launch -m ripbench run ...``): the command line."""

from .cli import main

if __name__ == "__main__":
    main(prog_name="ripbench")
