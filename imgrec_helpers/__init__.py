"""imgrec_helpers: the shared helper package of the imgrec course.

Modules, by concern (each function's docstring names the lesson that uses it):

- ``data``: the data home, CIFAR-10, photos of any mode, image folders (lessons 01-04)
- ``models``: the reference CNN (02) and the fast CNN of the benchmark
- ``pretrained``: Keras Applications (VGG16, MobileNet...), their weights and features (03, 04)
- ``training``: precision, fitting with timing, evaluation (02, 04, 05)
- ``persistence``: atomic saving and loading of models, features and records (02-05)
- ``prediction``: single-image and top-k predictions (02-04, ``imgrec predict``)
- ``plots``: every figure (01-05)
- ``results``: result records, the comparison table, the run report (02-05)
- ``running``: each lesson's setup cell and the headless runner (all, ``imgrec run``)
- ``bench``: the speed benchmark (``imgrec bench``)
- ``cli``: the ``imgrec`` command
- ``profiles``: the full / quick / smoke settings, in one place

Import the modules you need: ``from imgrec_helpers import data, plots``.
"""
from __future__ import annotations

__version__ = "0.1.0"
