"""`python -m qaexp.hub`: upload a saved model directory (qaexp.tools.push)."""
import sys

from qaexp.tools.push import main

if __name__ == "__main__":
    sys.exit(main())
