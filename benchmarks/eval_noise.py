r"""Does the convergence criterion measure training, or the noise of evaluating the network?

    mkdir -p results/cifar10-cpu/eval-noise
    python benchmarks/eval_noise.py --dataset cifar10 --data-dir PATH --seed 4 \
        --output results/cifar10-cpu/eval-noise/seed-4.json

The protocol's criterion (validation accuracy within 0.005 over a CE run's last 3 epochs) is met
when training has stopped moving the network. With batch normalization, though, the network that
is evaluated also depends on the *moving statistics* of its normalization layers: an average over
roughly the last 100 training batches (momentum 0.99), recomputed as training goes on even when the
learning rate has decayed to nothing. This script separates the two.

It trains one CE run exactly as the protocol's preset trains it (``--profile``, seed ``--seed``),
then freezes the weights and passes ``--windows`` more epochs of training batches through the
network in training mode, with no weight update (dropout active, as in training): only the moving
statistics change. After each window it measures validation accuracy. The range of these
accuracies over any 3 consecutive windows is what the criterion would see from the statistics
alone; if it reaches the criterion's tolerance, no longer schedule can meet the criterion.

The output (one JSON file, written atomically) holds the run's per-epoch history, the windows'
validation accuracies and their ranges, the threads and the data source. Chapters 10 and 11 read
the checks committed in ``results/<dataset>-cpu/eval-noise/`` (``seed-<seed>.json``, written by
``--output`` there). Trained with one thread, as the protocol's runs are on this project's
machine, the run can repeat the protocol's run of the same seed exactly: the chapter compares their
validation histories and says whether the frozen network is the recorded one.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

WINDOW, TOLERANCE = 3, 0.005  # the protocol's convergence criterion (protocol.report.convergence)


def _count(name, minimum):
    def parse(text):
        if not text.isdigit() or int(text) < minimum:
            raise argparse.ArgumentTypeError(f"{name} must be a whole number of at least {minimum}; got {text!r}.")
        return int(text)
    return parse


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="cifar10", choices=["cifar10", "gtsrb"],
                   help="the dataset of a CPU-scale preset (Part III)")
    p.add_argument("--data-dir", default=None, help="the dataset's archive or folder (default: its loader's)")
    p.add_argument("--output", required=True, help="the JSON file to write (its folder must exist)")
    p.add_argument("--seed", type=_count("--seed", 0), default=0, help="the CE run's seed")
    p.add_argument("--windows", type=_count("--windows", WINDOW), default=6,
                   help="epochs of training batches passed with frozen weights (at least 3)")
    p.add_argument("--epochs", type=_count("--epochs", 1), default=None,
                   help="train for this many epochs instead of the preset's (a smoke test, not a result)")
    args = p.parse_args(argv)
    out = Path(args.output)
    if out.suffix != ".json" or not out.parent.is_dir():
        p.error(f"--output must be a .json file in an existing folder; got {args.output!r}.")
    return args


def statistics_windows(model, x_train, y_train, batch_size, windows, x_val, y_val, seed):
    """Validation accuracy after each of ``windows`` epochs of training batches passed through
    ``model`` in training mode with its weights frozen: only the moving statistics of batch
    normalization change (and dropout draws its masks, as in training)."""
    import numpy as np
    import tensorflow as tf

    from camri_utils import data

    trainable = [w.numpy() for w in model.trainable_weights]

    @tf.function
    def refresh(x):
        model(x, training=True)  # updates the moving statistics; no gradient, no optimizer step

    val = data.pipeline(x_val, y_val, batch_size, training=False)
    batches = data.pipeline(x_train, y_train, batch_size, training=True, seed=seed + 1)
    accuracies = []
    for _ in range(windows):
        for x, _y in batches:
            refresh(x)
        scores = model.predict(val, verbose=0)
        accuracies.append(float(np.mean(np.argmax(scores, axis=1) == y_val)))
    for before, w in zip(trainable, model.trainable_weights):  # the weights did not move
        if not np.array_equal(before, w.numpy()):
            raise RuntimeError(f"weight {w.path} changed during the statistics windows.")
    return accuracies


def ranges(values, window=WINDOW):
    """max - min of each run of ``window`` consecutive values."""
    return [max(values[i:i + window]) - min(values[i:i + window]) for i in range(len(values) - window + 1)]


def main(argv=None):
    args = parse_args(argv)
    from camri_utils.protocol.workers import set_threads

    set_threads(1)  # as the protocol's runs are trained here (two workers of one thread)
    from camri_utils import data, protocol, training
    from camri_utils.io import write_json

    spec = protocol.preset(args.dataset, "cpu")
    config = protocol.spec.train_config(spec, "ce", None, {}, args.seed)
    if args.epochs is not None:
        config = training.TrainConfig.from_dict({**config.to_dict(), "epochs": args.epochs})
    ds = data.load(args.dataset, args.data_dir, **config.dataset_options)
    start = time.perf_counter()
    result = training.train(config, dataset=ds)
    trained = time.perf_counter() - start
    split = training._prepare_data(config, ds)  # the run's own training and validation images
    windows = statistics_windows(result.model, split.x_train, split.y_train, config.batch_size, args.windows,
                                 split.x_val, split.y_val, args.seed)
    history = {k: [float(v) for v in vals] for k, vals in result.history.items()}
    window_ranges = ranges(windows)
    write_json(Path(args.output), {
        "dataset": args.dataset, "profile": spec.profile, "model": config.model, "seed": args.seed,
        "epochs": config.epochs, "smoke_test": args.epochs is not None,
        "criterion": {"window": WINDOW, "tolerance": TOLERANCE},
        "history": history, "trained_last_range": ranges(history["val_accuracy"])[-1],
        "final_val_accuracy": history["val_accuracy"][-1],
        "window_steps": math.ceil(len(split.x_train) / config.batch_size),
        "windows_val_accuracy": windows, "windows_ranges": window_ranges,
        "windows_max_range": max(window_ranges), "windows_mean_range": sum(window_ranges) / len(window_ranges),
        "train_wall_s": trained, "threads": training.threads(), "config": config.to_dict(),
        "data_source": {"kind": ds.source.kind, "location": ds.source.origin, "verified": ds.source.verified},
    }, indent=1)
    print(json.dumps({"trained_last_range": ranges(history["val_accuracy"])[-1], "windows": windows,
                      "windows_ranges": window_ranges}))


if __name__ == "__main__":
    sys.exit(main())
