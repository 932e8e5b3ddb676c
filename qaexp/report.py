"""`python -m qaexp.report`: the same as `qaexp report` (qaexp.tools.report)."""
import sys

from qaexp.tools.report import main

if __name__ == "__main__":
    sys.exit(main())
