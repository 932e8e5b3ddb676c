"""`python -m qaexp.predict`: the same as `qaexp predict` (qaexp.tools.predict)."""
import sys

from qaexp.tools.predict import main

if __name__ == "__main__":
    sys.exit(main())
