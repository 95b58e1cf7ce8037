"""`python -m vidgan ...` (and `torchrun -m vidgan train ...`)."""
import sys

from vidgan.cli import main

if __name__ == "__main__":
    sys.exit(main())
