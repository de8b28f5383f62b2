"""Write tests/data/camri_<backend>.keras, a tiny seeded model (Dense -> CosineHead) compiled
with CAMRILoss and trained one step, and camri_<backend>_pred.npy, its predictions on :func:`fixed_input`, under
one Keras backend. tests/test_backends.py loads every such file under the backend it runs on.

    KERAS_BACKEND=tensorflow .venv/bin/python tests/data/make_backend_models.py
    KERAS_BACKEND=jax .venv-jax/bin/python tests/data/make_backend_models.py
"""

from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def fixed_input():
    return np.random.default_rng(0).normal(size=(8, 5)).astype(np.float32)


def make_loss():
    from camri_utils import CAMRILoss

    return CAMRILoss(4, [1, 3], [0.3, 0.5], 16.0, monotonic=True)


def make_model():
    import keras

    from camri_utils import CosineHead

    keras.utils.set_random_seed(0)
    inputs = keras.Input((5,))
    features = keras.layers.Dense(3, activation="tanh")(inputs)
    model = keras.Model(inputs, CosineHead(4)(features))
    model.compile(optimizer="adam", loss=make_loss())
    # One step, so that the file holds the optimizer's state too.
    y = np.arange(8) % 4
    model.fit(fixed_input(), y, batch_size=8, epochs=1, verbose=0, shuffle=False)
    return model


def main():
    import keras

    backend = keras.backend.backend()
    model = make_model()
    model.save(HERE / f"camri_{backend}.keras")
    np.save(HERE / f"camri_{backend}_pred.npy", model.predict(fixed_input(), verbose=0))
    print(f"wrote {HERE}/camri_{backend}.keras and camri_{backend}_pred.npy")


if __name__ == "__main__":
    main()
