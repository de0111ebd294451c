"""The run profiles (a notebook's ``PROFILE``, ``imgrec run --profile``), same code on the same real data: ``full``,
the reference recipes (85.7 minutes on a shared 2-core CPU in float32, README); ``quick`` (default), the course in
about 10 minutes on a 2-core laptop CPU in float32; ``smoke``, seconds per notebook, for tests."""
from __future__ import annotations

from typing import Any

from .errors import ImgrecError

DEFAULT_PROFILE = "quick"

_TABLE: dict[str, tuple[Any, Any, Any]] = {  # setting: (full, quick, smoke); None = all
    # lesson 02; quick: all 50,000 (45,000 train, 5,000 validation) and all 10,000 test images
    "train_images": (None, None, 2000), "test_images": (None, None, 1000),
    "epochs": (30, 3, 2),  # quick: 0.687-0.698 test accuracy (2 epochs: 0.644, too few)
    "batch_size": (64, 64, 64),
    "min_test_accuracy": (0.70, 0.65, 0.15),  # smoke: above chance (0.10): training did something
    "misclassified_shown": (16, 16, 8),
    # lesson 03
    "top_k": (9, 5, 5),  # the original showed the top 9
    "sample_photos": (None, None, 4),  # None = every photo in images/samples
    # lesson 04
    "head_epochs": (100, 100, 30),  # part A: head on the 64 saved feature vectors
    "min_dog_accuracy": (0.8, 0.8, 0.6),  # part A: share of the 5 new photos right (4 of 5; chance: 6 in 32)
    "min_alpaca_accuracy": (0.85, 0.85, 0.6),  # part B: validation accuracy after fine-tuning
    # quick 10, not 5: with the two lambs filed as "not alpaca" the seed-42 split is harder; MobileNetV2 0.35 reached
    # 0.831 after 5 and 0.862-0.923 after 10 over seeds 42 / 7 / 1 (about 1 s per extra epoch on 2 cores)
    "alpaca_epochs": (10, 10, 1),  # part B, frozen base
    "augment_epochs": (10, 5, 1),  # part B, with augmentation
    "fine_tune_epochs": (10, 3, 1),  # part B, last layers unfrozen
    "fine_tune_layers": (30, 30, 30),  # how many of the base's last layers are unfrozen
    "transfer_train_images": (None, 3000, 500),  # CIFAR-10 features; quick: enough for lesson 05's largest size
    "transfer_image_size": (96, 96, 96),
    "transfer_epochs": (20, 10, 3),  # the validation accuracy levels off after 3-4 epochs
    # lesson 05; quick: 30 / 30 / 10 epochs, 22,000 images of scratch training
    "curve_sizes": ([100, 1000, 10000, 50000], [100, 300, 1000], [100, 500]),
    "curve_budget_images": (500_000, 10_000, 2000),  # scratch CNN: epochs = budget / size, clipped
    "curve_min_epochs": (10, 5, 1), "curve_max_epochs": (100, 30, 5),
    "curve_test_images": (None, 2000, None),  # None = lesson 02's; quick: class-balanced, one s.e. about 1 point
    # lesson 06 (cloud vision APIs vs your own models)
    "api_photos": (None, 8, 3),  # photos of images/samples sent through every approach
    "ocr_images": (200, 60, 50),  # rendered images with known text for the character error rate
    "max_ocr_cer": (0.25, 0.25, 0.25),  # lesson 06 asserts the offline OCR reads better than this
    # lesson 07 (Grad-CAM, LiteRT export)
    "gradcam_photos": (6, 3, 2),  # sample photos shown with the heat maps of their top two classes
    "gradcam_check_photos": (64, 16, 8),  # ImageNet photos of the masking test (hottest vs random region)
    "gradcam_random_regions": (5, 5, 3),  # random regions masked per photo, against the hottest one
    "deploy_test_images": (None, 1000, 200),  # CIFAR-10 test images for the exported CNN (None = lesson 02's)
    "deploy_timing_runs": (50, 20, 5),  # timed runs of one image per model and format (the median is shown)
    "representative_images": (200, 100, 16),  # training images that calibrate the int8 quantization
    "deterministic": (False, False, True),
}
PROFILES: dict[str, dict[str, Any]] = {name: {key: values[i] for key, values in _TABLE.items()}
                                       for i, name in enumerate(("full", "quick", "smoke"))}


def profile_settings(profile: str) -> dict[str, Any]:
    """A copy of the settings of ``profile`` (``full``, ``quick`` or ``smoke``). Used by every lesson."""
    if profile not in PROFILES:
        raise ImgrecError(f"unknown profile {profile!r}; use one of: {', '.join(PROFILES)}")
    return {k: (list(v) if isinstance(v, list) else v) for k, v in PROFILES[profile].items()}
