"""`python -m qaexp.serve`: the same as `qaexp serve` (qaexp.tools.serve)."""
import sys

from qaexp.tools.serve import main

if __name__ == "__main__":
    sys.exit(main())
