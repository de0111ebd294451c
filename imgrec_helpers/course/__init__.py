"""The course tooling behind the ``imgrec`` command (``runner``, ``manifest``, ``report``, ``prediction``, ``lab``,
``bench``, ``cli``): it runs, checks and reports the lessons and imports their helpers, never the other way round."""
