"""The course tooling: what runs, checks and reports the lessons, never imported by them.

- ``runner``: ``imgrec run``, the notebooks executed headless by papermill, ``manifest.json``
- ``report``: ``report.html`` from a run folder
- ``prediction``: ``imgrec predict`` and ``imgrec evaluate``, batched, on ``.keras`` and ``.tflite`` files
- ``lab``: ``imgrec lab``, JupyterLab on the student's own copies of the lessons
- ``bench``: ``imgrec bench``, the course's speed against plain Keras
- ``cli``: the ``imgrec`` command

These modules import the lessons' helpers (the modules of :mod:`imgrec_helpers` itself); the helpers never import
them (``tests/test_packaging.py`` checks it).
"""
