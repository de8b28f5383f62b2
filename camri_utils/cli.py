"""The ``camri`` command.

    camri protocol --dataset fashion_mnist --profile quick            # run (or finish) the protocol
    camri protocol --dataset cifar10 --profile full --shard 2/8       # one share of a sweep
    camri protocol report --output results/fashion_mnist              # merge the records into the table
    camri protocol --profile full --workers 2 --threads-per-worker 1  # two runs side by side
    camri protocol --profile full --rerun 018c8df81b0e699f2c57        # train one run again
    camri sensitivity --dataset fashion_mnist --profile full \
        --protocol results/fashion_mnist --output results/fashion_mnist-sensitivity   # CAMRI's m x s sweep

Several processes may work on one output folder (shards, workers, a second invocation): each
run is trained once, under its lock; a run another process holds is left to it, and named.
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


def _count(name):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a whole number >= 1; got {text!r}") from None
        if value < 1:
            raise argparse.ArgumentTypeError(f"{name} must be a whole number >= 1; got {text!r}")
        return value
    return parse


def _folder(name):
    """A folder argument: an empty value is an error (``--output ''`` would otherwise mean the
    default folder, or the working directory), not a silent choice."""
    def parse(text):
        if not text.strip():
            raise argparse.ArgumentTypeError(f"{name} is empty; give a folder (or leave the option out for its "
                                             "default)")
        return text
    return parse


# Options that take a value which may look like a negative number ("--shard -1/2"): argparse
# would take the value for an option and say "expected one argument"; joined as
# "--shard=-1/2", the value reaches its own check, whose message says what is wrong.
_VALUED = ("--shard", "--workers", "--threads-per-worker", "--accuracy-k", "--rerun")


def _join_values(argv):
    argv, out, i = list(argv), [], 0
    while i < len(argv):
        if argv[i] in _VALUED and i + 1 < len(argv) and argv[i + 1].startswith("-") and argv[i + 1][1:2].isdigit():
            out.append(f"{argv[i]}={argv[i + 1]}")
            i += 2
        else:
            out.append(argv[i])
            i += 1
    return out


def _add_execution(p):
    p.add_argument("--workers", type=_count("workers"), default=1,
                   help="train in N processes side by side on this machine (default 1: in this process)")
    p.add_argument("--threads-per-worker", type=_count("threads-per-worker"), default=None, metavar="T",
                   help="TensorFlow threads (intra- and inter-op) of each worker, or of this process with one "
                        "worker (default: TensorFlow's, about one per core); they change a run's numbers, and "
                        "each record states them")
    p.add_argument("--rerun", action="append", default=[], metavar="RUN_ID",
                   help="delete this run's record and scores first, so that it is trained again (repeatable)")


def _accuracy_k(text):
    try:
        k = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"accuracy-k must be a number; got {text!r}") from None
    if not math.isfinite(k) or k < 0:
        raise argparse.ArgumentTypeError(f"accuracy-k must be a finite number >= 0; got {text!r}")
    return k


def main(argv=None):
    from camri_utils.protocol.spec import PRESETS

    parser = argparse.ArgumentParser(prog="camri", description="The CAMRI book's command line.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("protocol", help="the paper's experiment: rank classes, sweep, select, report")
    p.add_argument("action", nargs="?", choices=["run", "report"], default="run",
                   help="'run' (default) trains what is missing and reports; 'report' only merges records")
    p.add_argument("--dataset", default="fashion_mnist", help="fashion_mnist, cifar10, gtsrb or awa2")
    p.add_argument("--profile", default="quick", choices=sorted({profile for _, profile in PRESETS}),
                   help="quick, full, the CPU-scale Part III runs (cpu; cifar10, gtsrb) or the rare-class setting "
                        "(rare, rare-quick; fashion_mnist only)")
    p.add_argument("--output", type=_folder("--output"), default=None,
                   help="results folder (default: results/<dataset>-<profile>)")
    p.add_argument("--data-dir", type=_folder("--data-dir"), default=None,
                   help="folder (or tar archive) holding the dataset (see camri_utils.data.load)")
    p.add_argument("--shard", type=_shard, default=(0, 1), help="run only share i of n, e.g. 2/8")
    p.add_argument("--accuracy-k", type=_accuracy_k, default=None,
                   help="maintain accuracy = mean CE accuracy minus k CE standard deviations (default 1)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_execution(p)
    q = sub.add_parser("sensitivity", help="CAMRI's margin x scale sweep for one important class of a protocol run")
    q.add_argument("action", nargs="?", choices=["run", "report"], default="run",
                   help="'run' (default) trains what is missing and reports; 'report' only reads records")
    q.add_argument("--dataset", default="fashion_mnist")
    q.add_argument("--profile", default="quick", choices=["quick", "full"])
    q.add_argument("--protocol", type=_folder("--protocol"), required=True,
                   help="the protocol results folder whose setup and ranking it uses")
    q.add_argument("--output", type=_folder("--output"), default=None,
                   help="sweep folder (default: results/<dataset>-sensitivity-<profile>)")
    q.add_argument("--data-dir", type=_folder("--data-dir"), default=None,
                   help="folder (or tar archive) holding the dataset (see camri_utils.data.load)")
    q.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_execution(q)
    args = parser.parse_args(_join_values(sys.argv[1:] if argv is None else argv))

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
            _rerun(output, args.rerun)
            trained = protocol.run(spec, output, shard=args.shard, progress=not args.quiet, dataset=ds,
                                   workers=args.workers, threads=args.threads_per_worker)
            print(f"trained {trained} run(s)")
        elif args.rerun:
            raise protocol.ProtocolError("--rerun needs the 'run' action (it trains the runs again).")
        from camri_utils.protocol.report import WaitingForCE

        try:
            print(protocol.report(output, accuracy_k=args.accuracy_k))
        except WaitingForCE as exc:
            if args.action != "run":
                raise
            # This shard did its share; the table waits for the other shards' CE runs.
            print(f"this shard's runs are done; no table yet: {exc}")
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
            _rerun(output, args.rerun)
            trained = protocol.run_sweep(sweep, output, args.protocol, progress=not args.quiet, dataset=ds,
                                         workers=args.workers, threads=args.threads_per_worker)
            print(f"trained {trained} run(s)")
        else:
            if args.rerun:
                raise protocol.ProtocolError("--rerun needs the 'run' action (it trains the runs again).")
            from camri_utils.protocol.store import check_sweep_folder

            protocol.read_spec(args.protocol)  # a missing protocol folder is named first
            # The folder must hold this very sweep: never a report of another sweep's records.
            check_sweep_folder(output, sweep.to_dict())
        print(protocol.sweep_report(sweep, output, args.protocol))
    except expected as exc:
        print(f"camri sensitivity: {exc}", file=sys.stderr)
        return 2
    return 0


def _rerun(output, run_ids):
    if run_ids:
        from camri_utils.protocol.store import rerun

        removed = rerun(output, run_ids)
        print(f"--rerun: removed {len(removed)} record(s) to train again" +
              (f"; no record of {sorted(set(run_ids) - set(removed))}" if len(removed) < len(set(run_ids)) else ""))


if __name__ == "__main__":
    sys.exit(main())
