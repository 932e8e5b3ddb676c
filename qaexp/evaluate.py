"""`python -m qaexp.evaluate`: the same as `qaexp evaluate` (qaexp.tools.score)."""
import sys

from qaexp.tools.score import main

if __name__ == "__main__":
    sys.exit(main())
