"""imgrec_helpers: the lessons' helpers, the plumbing around the Keras calls the notebooks make themselves (``from
imgrec_helpers import data, plots``), and in :mod:`imgrec_helpers.course` the ``imgrec`` tooling, which the helpers
never import (``tests/test_packaging.py``). README, "The helper package", lists what each module holds."""

__version__ = "0.1.0"
