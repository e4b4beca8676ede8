"""``python -m suites.gate``: the A/B regression gate."""
import sys

from suites.gate.gate import main

sys.exit(main())
