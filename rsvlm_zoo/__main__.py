"""`python -m rsvlm_zoo` runs the command line."""

from rsvlm_zoo.cli import main

if __name__ == "__main__":
    main()
