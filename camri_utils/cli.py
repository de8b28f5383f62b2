"""The ``camri`` command.

    camri protocol --dataset fashion_mnist --profile quick            # run (or finish) the protocol
    camri protocol --dataset cifar10 --profile full --shard 2/8       # one share of a sweep
    camri protocol report --output results/fashion_mnist              # merge the records into the table
    camri sensitivity --dataset fashion_mnist --profile full \
        --protocol results/fashion_mnist --output results/fashion_mnist-sensitivity   # CAMRI's m x s sweep
"""

from __future__ import annotations

import argparse
import math
import sys


def _shard(text):
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"shard must look like 2/8 (share i of n); got {text!r}") from None
    if not 1 <= i <= n:
        raise argparse.ArgumentTypeError(f"shard i/n needs 1 <= i <= n; got {text!r}")
    return i - 1, n


def _accuracy_k(text):
    try:
        k = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"accuracy-k must be a number; got {text!r}") from None
    if not math.isfinite(k) or k < 0:
        raise argparse.ArgumentTypeError(f"accuracy-k must be a finite number >= 0; got {text!r}")
    return k


def main(argv=None):
    parser = argparse.ArgumentParser(prog="camri", description="The CAMRI book's command line.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("protocol", help="the paper's experiment: rank classes, sweep, select, report")
    p.add_argument("action", nargs="?", choices=["run", "report"], default="run",
                   help="'run' (default) trains what is missing and reports; 'report' only merges records")
    p.add_argument("--dataset", default="fashion_mnist", help="fashion_mnist, cifar10, gtsrb or awa2")
    p.add_argument("--profile", default="quick", choices=["quick", "full"])
    p.add_argument("--output", default=None, help="results folder (default: results/<dataset>-<profile>)")
    p.add_argument("--data-dir", default=None, help="folder holding the dataset (see camri_utils.data.load)")
    p.add_argument("--shard", type=_shard, default=(0, 1), help="run only share i of n, e.g. 2/8")
    p.add_argument("--accuracy-k", type=_accuracy_k, default=None,
                   help="maintain accuracy = mean CE accuracy minus k CE standard deviations (default 1)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    q = sub.add_parser("sensitivity", help="CAMRI's margin x scale sweep for one important class of a protocol run")
    q.add_argument("action", nargs="?", choices=["run", "report"], default="run",
                   help="'run' (default) trains what is missing and reports; 'report' only reads records")
    q.add_argument("--dataset", default="fashion_mnist")
    q.add_argument("--profile", default="quick", choices=["quick", "full"])
    q.add_argument("--protocol", required=True, help="the protocol results folder whose setup and ranking it uses")
    q.add_argument("--output", default=None, help="sweep folder (default: results/<dataset>-sensitivity-<profile>)")
    q.add_argument("--data-dir", default=None, help="folder holding the dataset (see camri_utils.data.load)")
    q.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)

    from camri_utils import data, protocol

    # Only the library's own input errors become a one-line message; anything else is a bug
    # and keeps its traceback.
    expected = (protocol.ProtocolError, data.DatasetNotFoundError, data.CorruptDataError, data.DataLayoutError)

    if args.command == "sensitivity":
        return _sensitivity(args, expected)
    output = args.output or f"results/{args.dataset}-{args.profile}"
    try:
        if args.action == "run":
            spec = protocol.preset(args.dataset, args.profile)
            if args.accuracy_k is not None:
                spec.accuracy_k = args.accuracy_k
            ds = data.load(args.dataset, args.data_dir, **spec.dataset_options)
            print(f"{args.dataset} ({ds.source}); profile {args.profile}; output {output}")
            trained = protocol.run(spec, output, shard=args.shard, progress=not args.quiet, dataset=ds)
            print(f"trained {trained} run(s)")
        print(protocol.report(output, accuracy_k=args.accuracy_k))
    except expected as exc:
        print(f"camri protocol: {exc}", file=sys.stderr)
        return 2
    return 0


def _sensitivity(args, expected):
    from camri_utils import data, protocol

    output = args.output or f"results/{args.dataset}-sensitivity-{args.profile}"
    try:
        sweep = protocol.sweep_preset(args.dataset, args.profile)
        if args.action == "run":
            spec = sweep.protocol()
            ds = data.load(args.dataset, args.data_dir, **spec.dataset_options)
            print(f"{args.dataset} ({ds.source}); sweep {args.profile}; protocol {args.protocol}; output {output}")
            trained = protocol.run_sweep(sweep, output, args.protocol, progress=not args.quiet, dataset=ds)
            print(f"trained {trained} run(s)")
        print(protocol.sweep_report(sweep, output, args.protocol))
    except expected as exc:
        print(f"camri sensitivity: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
