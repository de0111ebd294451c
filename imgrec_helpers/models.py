"""The course's own models, reused after lessons 02 and 04 taught them (lesson 05, ``imgrec bench``). Keras is imported
inside the builders: importing it takes about 10 s, which importing this module must not cost."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

REFERENCE_CNN_PARAMS = 1_250_858  # trainable parameters of the reference architecture (lesson 02 asserts it)


def build_reference_cnn(num_classes: int = 10, input_shape: tuple[int, int, int] = (32, 32, 3),
                        precision: str = "float32", name: str = "reference_cnn"):
    """Lesson 02's CNN, tested equal to the notebook's cell (lesson 05, ``imgrec bench``); ``precision`` is each
    layer's Keras dtype policy (no global setting changes), the softmax stays float32."""
    import keras  # 10 s to import: only where needed (module docstring)
    from keras import layers
    p = precision
    stack: list[Any] = [keras.Input(shape=input_shape)]
    for filters in (32, 64):
        stack += [layers.Conv2D(filters, (3, 3), padding="same", activation="relu", dtype=p),
                  layers.Conv2D(filters, (3, 3), activation="relu", dtype=p),
                  layers.MaxPooling2D(pool_size=(2, 2), dtype=p), layers.Dropout(0.25, dtype=p)]
    stack += [layers.Flatten(dtype=p), layers.Dense(512, activation="relu", dtype=p), layers.Dropout(0.5, dtype=p),
              layers.Dense(num_classes, activation="softmax", dtype="float32")]
    return keras.Sequential(stack, name=name)


def build_fast_cnn(num_classes: int = 10, input_shape: tuple[int, int, int] = (32, 32, 3), precision: str = "float32",
                   widths: tuple[int, int, int] = (64, 128, 256), name: str = "fast_cnn"):
    """A faster-learning CNN (batch norm, global average pooling) for ``imgrec bench``'s time-to-80% figure."""
    import keras  # 10 s to import: only where needed (module docstring)
    from keras import layers
    p = precision
    stack: list[Any] = [keras.Input(shape=input_shape)]
    for filters in widths:
        for _ in range(2):
            stack += [layers.Conv2D(filters, 3, padding="same", use_bias=False, dtype=p),
                      layers.BatchNormalization(dtype=p), layers.Activation("relu", dtype=p)]
        stack.append(layers.MaxPooling2D(2, dtype=p))
    stack += [layers.GlobalAveragePooling2D(dtype=p), layers.Dropout(0.2, dtype=p),
              layers.Dense(num_classes, activation="softmax", dtype="float32")]
    return keras.Sequential(stack, name=name)


def build_feature_head(feature_shape: int | Sequence[int], num_classes: int, hidden: int = 256,
                       dropout: float = 0.5, learning_rate: float = 1e-3, name: str = "head"):
    """The compiled head on saved pretrained features (lesson 05's curve, ``imgrec bench``; lesson 04 in view): no
    hidden layer if ``hidden`` is 0; one sigmoid unit for 2 classes, else softmax."""
    import keras  # 10 s to import: only where needed (module docstring)
    from keras import layers
    shape = (int(feature_shape),) if isinstance(feature_shape, (int, np.integer)) else tuple(map(int, feature_shape))
    binary = num_classes == 2
    stack: list[Any] = [keras.Input(shape=shape), layers.Flatten(name="flatten")]
    if hidden:
        stack += [layers.Dense(hidden, activation="relu", name="hidden"), layers.Dropout(dropout, name="dropout")]
    stack.append(layers.Dense(1 if binary else num_classes, activation="sigmoid" if binary else "softmax",
                              name="output"))
    model = keras.Sequential(stack, name=name)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), metrics=["accuracy"],
                  loss="binary_crossentropy" if binary else "sparse_categorical_crossentropy")
    return model


def parameter_counts(model) -> dict[str, int]:
    """Trainable, non-trainable and total parameter counts (lessons 02 and 04 show these)."""
    trainable = int(sum(np.prod(w.shape) for w in model.trainable_weights))
    frozen = int(sum(np.prod(w.shape) for w in model.non_trainable_weights))
    return {"trainable": trainable, "non_trainable": frozen, "total": trainable + frozen}
