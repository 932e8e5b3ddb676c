"""`python -m qaexp.analyze`: the same as `qaexp analyze` (qaexp.tools.analyze)."""
import sys

from qaexp.tools.analyze import main

if __name__ == "__main__":
    sys.exit(main())
