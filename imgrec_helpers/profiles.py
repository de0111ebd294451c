"""The three run profiles, in one place: ``full``, ``quick`` (the default) and ``smoke``.

A profile only changes how much data and how many epochs the lessons use; every profile runs the
same code on the same real data. Each notebook's parameters cell names the profile
(``PROFILE = "quick"``); :func:`imgrec_helpers.running.start_lesson` turns it into these settings.
``imgrec run --profile NAME`` passes it to every notebook.

- ``full``: the reference recipes (all 50,000 CIFAR-10 images, 30 epochs, batch 64, ...).
  85.7 minutes measured on a shared 2-core CPU in float32 (README); not measured on a GPU.
- ``quick``: real data, subsets and fewer epochs: the whole course in minutes on a laptop CPU.
- ``smoke``: tiny, for tests: seconds per notebook.
"""
from __future__ import annotations

from typing import Any

from .errors import ImgrecError

DEFAULT_PROFILE = "quick"

PROFILES: dict[str, dict[str, Any]] = {
    "full": {
        # lesson 02: the reference recipe
        "train_images": None,            # None = all 50,000
        "test_images": None,             # None = all 10,000
        "epochs": 30,
        "batch_size": 64,
        "min_test_accuracy": 0.70,
        "misclassified_shown": 16,
        # lesson 03
        "top_k": 9,                      # the original showed the top 9
        "sample_photos": None,           # None = every photo in images/samples
        # lesson 04
        "head_epochs": 100,              # part A: head on the 64 saved feature vectors
        "min_dog_accuracy": 0.8,         # part A: share of the 5 new dog/cat photos right (4 of 5; chance: 6 in 32)
        "min_alpaca_accuracy": 0.85,     # part B: validation accuracy after fine-tuning
        "alpaca_epochs": 10,             # part B, frozen base
        "augment_epochs": 10,            # part B, with augmentation
        "fine_tune_epochs": 10,          # part B, last layers unfrozen
        "fine_tune_layers": 30,          # how many of the base's last layers are unfrozen
        "transfer_train_images": None,   # CIFAR-10 transfer: None = all 50,000
        "transfer_image_size": 96,
        "transfer_epochs": 20,
        # lesson 05
        "curve_sizes": [100, 1000, 10000, 50000],
        "curve_budget_images": 500_000,  # scratch CNN: epochs = budget / size, clipped
        "curve_min_epochs": 10,
        "curve_max_epochs": 100,
        "curve_test_images": None,       # the curve is scored on these test images (None = lesson 02's test set)
        # ---- lesson 06 (cloud vision APIs vs your own models) ----
        "api_photos": None,                  # photos of images/samples sent through every approach (None = all)
        "ocr_images": 200,                   # rendered images with known text for the character error rate
        "max_ocr_cer": 0.25,                 # lesson 06 asserts the offline OCR reads better than this
        # ---- end of lesson 06 ----
        # ---- lesson 07 (Grad-CAM, LiteRT export) ----
        "gradcam_photos": 6,                 # sample photos shown with the heat maps of their top two classes
        "gradcam_check_photos": 64,          # ImageNet photos of the masking test (hottest vs random region)
        "gradcam_random_regions": 5,         # random regions masked per photo, against the hottest one
        "deploy_test_images": None,          # CIFAR-10 test images for the exported CNN (None = lesson 02's set)
        "deploy_timing_runs": 50,            # timed runs of one image per model and format (the median is shown)
        "representative_images": 200,        # training images that calibrate the int8 quantization
        # ---- end of lesson 07 ----
        "deterministic": False,
    },
    "quick": {
        # sized for a 2-core laptop CPU without bfloat16 (float32): the whole course in about 10 minutes
        "train_images": None,            # all 50,000: 45,000 to train on, 5,000 for validation
        "test_images": None,             # all 10,000: lesson 02's claim is on the whole test set
        "epochs": 3,                     # 3 x 45,000 images: 0.687-0.698 test accuracy (2 epochs: 0.644, too few)
        "batch_size": 64,
        "min_test_accuracy": 0.65,
        "misclassified_shown": 16,
        "top_k": 5,
        "sample_photos": None,
        "head_epochs": 100,
        "min_dog_accuracy": 0.8,
        "min_alpaca_accuracy": 0.85,
        # 10, not 5: with the two lambs filed as "not alpaca" the seed-42 split is harder; MobileNetV2 0.35 reached
        # 0.831 after 5 (the resized copies) and 0.862-0.923 after 10 over seeds 42 / 7 / 1, on the resized copies
        # and on the public originals alike (about 1 s per extra epoch on 2 cores)
        "alpaca_epochs": 10,
        "augment_epochs": 5,
        "fine_tune_epochs": 3,
        "fine_tune_layers": 30,
        "transfer_train_images": 3000,   # lesson 04's CIFAR-10 features: enough for lesson 05's largest curve size
        "transfer_image_size": 96,
        "transfer_epochs": 10,            # the validation accuracy levels off after 3-4 epochs
        "curve_sizes": [100, 300, 1000],  # 30 / 30 / 10 epochs: 22,000 images of scratch training
        "curve_budget_images": 10_000,
        "curve_min_epochs": 5,
        "curve_max_epochs": 30,
        "curve_test_images": 2000,       # class-balanced 2,000 of the 10,000: one standard error about 1 point
        # ---- lesson 06 (cloud vision APIs vs your own models) ----
        "api_photos": 8,                     # photos of images/samples sent through every approach (None = all)
        "ocr_images": 60,                    # rendered images with known text for the character error rate
        "max_ocr_cer": 0.25,                 # lesson 06 asserts the offline OCR reads better than this
        # ---- end of lesson 06 ----
        # ---- lesson 07 (Grad-CAM, LiteRT export) ----
        "gradcam_photos": 3,                 # sample photos shown with the heat maps of their top two classes
        "gradcam_check_photos": 16,          # ImageNet photos of the masking test (hottest vs random region)
        "gradcam_random_regions": 5,         # random regions masked per photo, against the hottest one
        "deploy_test_images": 1000,          # CIFAR-10 test images for the exported CNN (None = lesson 02's set)
        "deploy_timing_runs": 20,            # timed runs of one image per model and format (the median is shown)
        "representative_images": 100,        # training images that calibrate the int8 quantization
        # ---- end of lesson 07 ----
        "deterministic": False,
    },
    "smoke": {
        "train_images": 2000,
        "test_images": 1000,
        "epochs": 2,
        "batch_size": 64,
        "min_test_accuracy": 0.15,       # above chance (0.10): training did something
        "misclassified_shown": 8,
        "top_k": 5,
        "sample_photos": 4,
        "head_epochs": 30,
        "min_dog_accuracy": 0.6,         # smoke: fewer epochs, a lower bar (still above chance)
        "min_alpaca_accuracy": 0.6,
        "alpaca_epochs": 1,
        "augment_epochs": 1,
        "fine_tune_epochs": 1,
        "fine_tune_layers": 30,
        "transfer_train_images": 500,
        "transfer_image_size": 96,
        "transfer_epochs": 3,
        "curve_sizes": [100, 500],
        "curve_budget_images": 2000,
        "curve_min_epochs": 1,
        "curve_max_epochs": 5,
        "curve_test_images": None,
        # ---- lesson 06 (cloud vision APIs vs your own models) ----
        "api_photos": 3,                     # photos of images/samples sent through every approach (None = all)
        "ocr_images": 50,                    # rendered images with known text for the character error rate
        "max_ocr_cer": 0.25,                 # lesson 06 asserts the offline OCR reads better than this
        # ---- end of lesson 06 ----
        # ---- lesson 07 (Grad-CAM, LiteRT export) ----
        "gradcam_photos": 2,                 # sample photos shown with the heat maps of their top two classes
        "gradcam_check_photos": 8,           # ImageNet photos of the masking test (hottest vs random region)
        "gradcam_random_regions": 3,         # random regions masked per photo, against the hottest one
        "deploy_test_images": 200,           # CIFAR-10 test images for the exported CNN (None = lesson 02's set)
        "deploy_timing_runs": 5,             # timed runs of one image per model and format (the median is shown)
        "representative_images": 16,         # training images that calibrate the int8 quantization
        # ---- end of lesson 07 ----
        "deterministic": True,
    },
}


def profile_settings(profile: str) -> dict[str, Any]:
    """A copy of the settings of ``profile`` (``full``, ``quick`` or ``smoke``). Used by every lesson."""
    if profile not in PROFILES:
        raise ImgrecError(f"unknown profile {profile!r}; use one of: {', '.join(PROFILES)}")
    return {k: (list(v) if isinstance(v, list) else v) for k, v in PROFILES[profile].items()}
