"""``python -m imgrec_helpers`` is the same as the ``imgrec`` command."""
from .course.cli import main

raise SystemExit(main())
