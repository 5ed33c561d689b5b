"""`python -m audiodiff`: the `audiodiff` command line."""

from audiodiff.cli import main

if __name__ == "__main__":
    main(prog_name="python -m audiodiff")
