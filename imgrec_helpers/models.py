"""The course's own models, for the lessons and tools that reuse them after a lesson has taught them.

- :func:`build_reference_cnn`: lesson 02 builds this CNN in view as a ``keras.Sequential``; lesson 05's
  data-efficiency curve and ``imgrec bench`` rebuild it here (``tests/test_models.py`` proves the notebook's
  cell and this function build the same architecture, so they cannot drift apart).
- :func:`build_feature_head`: the small head on saved pretrained features (lesson 05's curve, the benchmark).
- :func:`build_fast_cnn`: a faster-learning CNN for the benchmark's time-to-80% figure.

Transfer-learning models built on Keras Applications are built in view in lesson 04.
"""
from __future__ import annotations

from typing import Any, Sequence

REFERENCE_CNN_PARAMS = 1_250_858
"""Trainable parameters of the reference architecture (lesson 02 asserts it)."""


def build_reference_cnn(num_classes: int = 10, input_shape: tuple[int, int, int] = (32, 32, 3),
                        precision: str = "float32", name: str = "reference_cnn"):
    """The reference CNN of lesson 02, exactly as the original lesson defines it (reused by lesson 05, the benchmark).

    Conv2D(32, 3x3, same, relu) -> Conv2D(32, 3x3, relu) -> MaxPool(2) -> Dropout(0.25) ->
    Conv2D(64, 3x3, same, relu) -> Conv2D(64, 3x3, relu) -> MaxPool(2) -> Dropout(0.25) ->
    Flatten -> Dense(512, relu) -> Dropout(0.5) -> Dense(num_classes, softmax):
    1,250,858 trainable parameters for 32x32x3 inputs and 10 classes.

    ``precision`` is a Keras dtype policy (``"float32"``, ``"mixed_bfloat16"``, ``"mixed_float16"``)
    given to each layer, so no global setting is changed; the softmax always computes in float32.
    """
    import keras
    from keras import layers

    p = precision
    return keras.Sequential(
        [
            keras.Input(shape=input_shape),
            layers.Conv2D(32, (3, 3), padding="same", activation="relu", dtype=p),
            layers.Conv2D(32, (3, 3), activation="relu", dtype=p),
            layers.MaxPooling2D(pool_size=(2, 2), dtype=p),
            layers.Dropout(0.25, dtype=p),
            layers.Conv2D(64, (3, 3), padding="same", activation="relu", dtype=p),
            layers.Conv2D(64, (3, 3), activation="relu", dtype=p),
            layers.MaxPooling2D(pool_size=(2, 2), dtype=p),
            layers.Dropout(0.25, dtype=p),
            layers.Flatten(dtype=p),
            layers.Dense(512, activation="relu", dtype=p),
            layers.Dropout(0.5, dtype=p),
            layers.Dense(num_classes, activation="softmax", dtype="float32"),
        ],
        name=name,
    )


def build_fast_cnn(num_classes: int = 10, input_shape: tuple[int, int, int] = (32, 32, 3),
                   precision: str = "float32", widths: tuple[int, int, int] = (64, 128, 256),
                   name: str = "fast_cnn"):
    """A faster-learning CNN for the benchmark's time-to-80% figure (optional part of lesson 02).

    Same building blocks as the reference model plus batch normalisation, which lets it train at a
    higher learning rate; global average pooling replaces the large Dense(512) layer. ``widths``
    are the filters of its three blocks (two convolutions each, then max pooling).
    """
    import keras
    from keras import layers

    p = precision

    def block(filters: int) -> list:
        return [
            layers.Conv2D(filters, 3, padding="same", use_bias=False, dtype=p),
            layers.BatchNormalization(dtype=p),
            layers.Activation("relu", dtype=p),
            layers.Conv2D(filters, 3, padding="same", use_bias=False, dtype=p),
            layers.BatchNormalization(dtype=p),
            layers.Activation("relu", dtype=p),
            layers.MaxPooling2D(2, dtype=p),
        ]

    return keras.Sequential(
        [keras.Input(shape=input_shape), *[layer for w in widths for layer in block(w)],
         layers.GlobalAveragePooling2D(dtype=p), layers.Dropout(0.2, dtype=p),
         layers.Dense(num_classes, activation="softmax", dtype="float32")],
        name=name,
    )


def build_feature_head(feature_shape: int | Sequence[int], num_classes: int, hidden: int = 256,
                       dropout: float = 0.5, learning_rate: float = 1e-3, name: str = "head"):
    """The small head trained on saved pretrained features, compiled (lesson 05's curve, ``imgrec bench``).

    Flatten -> Dense(``hidden``, relu) -> Dropout(``dropout``) -> output; ``hidden=0`` leaves out
    the hidden layer. With ``num_classes == 2`` the output is one sigmoid unit (probability of class
    1, binary cross-entropy); otherwise ``num_classes`` softmax units with sparse categorical
    cross-entropy (integer labels). Adam at ``learning_rate``; metric ``accuracy``. Lesson 04 builds
    the same kind of head in view.
    """
    import keras
    import numpy as np
    from keras import layers

    if isinstance(feature_shape, (int, np.integer)):
        shape: tuple[int, ...] = (int(feature_shape),)
    else:
        shape = tuple(int(d) for d in feature_shape)
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


def parameter_counts(model) -> dict[str, int]:
    """Trainable, non-trainable and total parameter counts (lessons 02 and 04 show these)."""
    import numpy as np

    trainable = int(sum(np.prod(w.shape) for w in model.trainable_weights))
    frozen = int(sum(np.prod(w.shape) for w in model.non_trainable_weights))
    return {"trainable": trainable, "non_trainable": frozen, "total": trainable + frozen}
