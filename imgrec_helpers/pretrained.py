"""The small head trained on saved features: what remains here after the split (lesson 05, ``imgrec bench``).

Lesson 04 builds its heads in view as a ``keras.Sequential`` of ``Flatten`` and ``Dense``; lesson 05
and the benchmark reuse the same recipe from here, on smaller subsets of lesson 04's saved CIFAR-10
features. (This function is moving to :mod:`imgrec_helpers.models`.)

The rest of the former ``pretrained`` module now lives by concern: :mod:`imgrec_helpers.applications`
(the registry, choosing a model and the fallback), :mod:`imgrec_helpers.weights` (the Keras cache and
whether weights are available) and :mod:`imgrec_helpers.imagenet` (ImageNet class ids, top-1 accuracy).
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np


def build_feature_head(feature_shape: int | Sequence[int], num_classes: int, *, hidden: int = 256,
                       dropout: float = 0.5, learning_rate: float = 1e-3, name: str = "head"):
    """The small head trained on saved features, compiled (lesson 05; lesson 04 builds it in view).

    Flatten -> Dense(``hidden``, relu) -> Dropout(``dropout``) -> output; ``hidden=0`` leaves out
    the hidden layer. With ``num_classes == 2`` the output is one sigmoid unit (probability of class
    1, binary cross-entropy); otherwise ``num_classes`` softmax units with sparse categorical
    cross-entropy (integer labels). Adam at ``learning_rate``; metric ``accuracy``.
    """
    import keras
    from keras import layers

    shape = (int(feature_shape),) if isinstance(feature_shape, (int, np.integer)) else tuple(int(d) for d in feature_shape)
    binary = num_classes == 2
    stack: list[Any] = [keras.Input(shape=shape), layers.Flatten(name="flatten")]
    if hidden:
        stack += [layers.Dense(hidden, activation="relu", name="hidden"), layers.Dropout(dropout, name="dropout")]
    stack.append(layers.Dense(1 if binary else num_classes, activation="sigmoid" if binary else "softmax",
                              name="output"))
    model = keras.Sequential(stack, name=name)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss="binary_crossentropy" if binary else "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


__all__ = ["build_feature_head"]
