"""imgrec_helpers: the shared helper package of the imgrec course.

Modules, by concern (each function's docstring names the lesson that uses it). The lessons make
every Keras call they teach themselves; these modules are the plumbing around them:

- ``running``: each lesson's setup cell, ``lesson.record``, the headless runner (all, ``imgrec run``)
- ``profiles``: the full / quick / smoke settings, in one place
- ``quiet``: TensorFlow started without its C++ log (every setup cell, the ``imgrec`` command)
- ``hardware``: CPU model and flags, cores, memory, GPUs, detected in one place
- ``data``: the data home, CIFAR-10, photos of any mode, image folders (01-06)
- ``models``: the reference CNN and the feature head, reused after lesson 02 / 04 taught them (05, bench)
- ``training``: CPU speed settings, precision choice, evaluation arithmetic (02, 04, 05)
- ``applications``: which Keras Applications model a lesson runs on, and why (03, 04, 06, ``imgrec predict``)
- ``weights``: the Keras cache and the data home's weight files (03, 04, 06)
- ``imagenet``: ImageNet class ids and top-1 accuracy (03)
- ``persistence``: atomic, umask-respecting files; ``.keras`` files with class names (02-06)
- ``prediction``: batched ``imgrec predict`` and ``imgrec evaluate``
- ``plots``: the figures that are not the lesson (01-06)
- ``results``: result records and the comparison table (02-06); ``report``: ``report.html``
- ``cloud``: Cloud Vision requests, responses and recordings (06); ``ocr``: offline OCR and its error rate (06)
- ``lab``: ``imgrec lab``, JupyterLab on the student's own copies; ``bench``: ``imgrec bench``
- ``errors``: one-line errors; ``cli``: the ``imgrec`` command

Import the modules you need: ``from imgrec_helpers import data, plots``.
"""
from __future__ import annotations

__version__ = "0.1.0"
