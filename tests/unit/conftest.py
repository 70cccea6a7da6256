"""Hypothesis profiles for the property-based tests (``test_fuzz_*.py``).

``ci`` (loaded when ``CI`` is set, as ``.ci/run`` does): derandomized, so a
run tests the same examples every time until hypothesis or a test changes;
no example database; no deadline (two cores shared with the rest of the
suite make single-example timings noisy); 300 examples per test: the three
fuzz files take about 12 s together here (about 25 s with 500). ``dev`` (otherwise):
random examples, remembered failures in ``.hypothesis/``, 100 per test.
``hunt``: random, 5,000 examples per test, to look for new bugs. Choose one
with ``HYPOTHESIS_PROFILE``::

    HYPOTHESIS_PROFILE=hunt .venv/bin/python -m pytest tests/unit/test_fuzz_normalise.py -q
"""
import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, database=None, deadline=None,
                          max_examples=300, print_blob=True)
settings.register_profile("dev", deadline=None, max_examples=100)
settings.register_profile("hunt", deadline=None, max_examples=5000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE")
                      or ("ci" if os.environ.get("CI") else "dev"))
