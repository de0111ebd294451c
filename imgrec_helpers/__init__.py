"""imgrec_helpers: the shared helper package of the imgrec course.

Two layers. The modules of this package itself are **the lessons' helpers**: what the notebooks import. The
lessons make every Keras call they teach themselves; these modules are the plumbing around them (each
function's docstring names the lesson that uses it):

- ``running``: each lesson's setup cell (``start_lesson``), ``lesson.setting``, ``lesson.record``, parameter checks
- ``profiles``: the full / quick / smoke settings, in one place
- ``quiet``: TensorFlow started without its C++ log (every setup cell, the ``imgrec`` command)
- ``hardware``: CPU model and flags, cores, memory, GPUs, detected in one place
- ``sources``: the data home, the registry of pinned sources, the mirror, fetching (01-07)
- ``data``: CIFAR-10, photos of any mode, image folders (01-07)
- ``models``: the reference CNN and the feature head, reused after lesson 02 / 04 taught them (05, bench)
- ``training``: CPU speed settings, precision choice, devices for ``tf.distribute``, evaluation arithmetic (02, 04, 05)
- ``applications``: whether a Keras Applications model's weights can be had, else which stand-in and why; the
  Keras cache and the data home's weight files (03, 04, 06, 07; the lessons call the constructors themselves)
- ``imagenet``: ImageNet class ids and top-1 accuracy (03, 07)
- ``persistence``: atomic, umask-respecting files; ``.keras`` and ``.tflite`` files with class names (02-07)
- ``plots``: the figures that are not the lesson (01-07)
- ``results``: result records and the comparison table (02-07); ``deployment``: lesson 07's table
- ``cloud``: Cloud Vision requests, responses and recordings (06); ``ocr``: offline OCR and its error rate (06)
- ``errors``: one-line errors

The subpackage :mod:`imgrec_helpers.course` is **the course tooling** (the ``imgrec`` command: runner, manifest,
report, predict/evaluate, lab, bench). It imports the helpers; the helpers never import it
(``tests/test_packaging.py``).

Imports sit at the top of each module; an import inside a function carries a comment with the start-up time it
saves. Import the modules you need: ``from imgrec_helpers import data, plots``.
"""
from __future__ import annotations

__version__ = "0.1.0"
