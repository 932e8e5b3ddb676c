"""`python -m qaexp.export`: the same as `qaexp export` (qaexp.tools.export)."""
import sys

from qaexp.tools.export import main

if __name__ == "__main__":
    sys.exit(main())
