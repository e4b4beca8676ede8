"""The A/B regression gate (see :mod:`suites.gate.gate`)."""
