"""Train a list of planned runs into a results folder, in this process or in several worker
processes, without training any run twice. How one run is trained and recorded is the caller's
(``train_one``: :func:`camri_utils.protocol.runner.train_one` for the protocol and the sweep);
this module only shares the list out, under the locks.

Every process (a worker, a second ``camri protocol`` on the same folder, a shard) goes down
the same list and trains a run only after taking its lock (:mod:`.locks`) and finding it still
unrecorded; a run another process holds is left to it. A worker that dies (killed, out of
memory) releases its lock with its life and leaves no record (records and scores are written
atomically), so its run is simply trained again by the next resume.

Threads: TensorFlow's thread counts change a run's numbers (the order in which sums are
taken), so they are set once per process, before TensorFlow starts (:func:`set_threads`), and
every record states them (``compute.threads``). A run trained by a worker with ``threads=t``
gives the record a sequential run with ``threads=t`` gives. GPUs: with several, each worker
gets one (:func:`share_gpus`); on one, the workers share it, each with growing memory.
"""

from __future__ import annotations

import json
import os
import queue as _queue
import signal
import sys
import traceback
import uuid
from pathlib import Path

from camri_utils import checks
from camri_utils.protocol import locks
from camri_utils.protocol.spec import ProtocolError
from camri_utils.protocol.store import folder_kind, read_record, scores_problem

__all__ = ["set_threads", "share_gpus", "execute", "recorded", "busy_message"]


def set_threads(threads):
    """Run TensorFlow in this process with ``threads`` intra-op and ``threads`` inter-op
    threads (None: TensorFlow's default, about one per core). Possible only before TensorFlow
    has started (run an op) in this process, unless it already runs with these counts."""
    if threads is None:
        return
    n = checks.check_int(threads, "threads", minimum=1)
    from camri_utils.environment import require_tensorflow

    tf = require_tensorflow("camri_utils.protocol.workers")
    now = (tf.config.threading.get_intra_op_parallelism_threads(), tf.config.threading.get_inter_op_parallelism_threads())
    if now == (n, n):
        return
    try:
        tf.config.threading.set_intra_op_parallelism_threads(n)
        tf.config.threading.set_inter_op_parallelism_threads(n)
    except RuntimeError as exc:
        current = "its default threads" if now == (0, 0) else f"{now[0]} intra-op and {now[1]} inter-op threads"
        raise ProtocolError(f"cannot run with {n} thread(s): TensorFlow has already started in this process with "
                            f"{current}. Set them first thing in a fresh process (the camri command does), or use "
                            "workers, which start fresh.") from exc


def share_gpus(index):
    """Give worker ``index`` its GPU, before TensorFlow starts: with several GPUs, worker i sees
    GPU i mod n only (so that n workers use n GPUs); on one GPU, every worker shares it. Either
    way the worker's GPU memory grows as needed, instead of the first worker taking all of it.
    Returns the GPU's name, or None without a GPU."""
    from camri_utils.environment import _tensorflow

    tf = _tensorflow()
    gpus = tf.config.list_physical_devices("GPU") if tf is not None else []
    if not gpus:
        return None
    mine = gpus[index % len(gpus)]
    tf.config.set_visible_devices([mine], "GPU")
    tf.config.experimental.set_memory_growth(mine, True)
    return mine.name


def recorded(output, run_id, kind=None):
    """Whether ``output`` holds a valid record of ``run_id`` with usable scores."""
    path = Path(output) / "runs" / f"{run_id}.json"
    if not path.exists():
        return False
    try:
        record = read_record(path, kind)
    except ProtocolError:
        return False
    return scores_problem(output, record) is None


def train_runs(spec, output, todo, ds, session, train_one, on_done=None):
    """Train, in this process, each run of ``todo`` that no other process holds and that is not
    recorded by the time its lock is taken, with ``train_one(spec, output, planned, ds)``.
    Returns the run ids trained."""
    import keras

    kind = folder_kind(output)
    trained = []
    for planned in todo:
        lock = locks.Lock(output, planned.run_id, session)
        if not lock.acquire():
            continue  # another process trains it
        try:
            if recorded(output, planned.run_id, kind):
                continue  # another process finished it since the plan was read
            train_one(spec, output, planned, ds)
            trained.append(planned.run_id)
        finally:
            lock.release()
            keras.backend.clear_session()
        if on_done is not None:
            on_done(planned.run_id)
    return trained


_EXPECTED = ("ProtocolError", "DatasetNotFoundError", "CorruptDataError", "DataLayoutError")


def _worker(index, job, threads, session, command, results):
    """One worker process: its own threads, then the shared list (read from the file ``job``);
    its outcome on ``results``."""
    import pickle

    # A terminated worker unwinds (its atomic writes remove their temporary files).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    locks.COMMAND = f"{command} (worker {index + 1})"
    try:
        set_threads(threads)
        share_gpus(index)
        with open(job, "rb") as f:
            spec, output, todo, ds, train_one = pickle.load(f)  # written by this program's parent process
        results.put(("done", index, os.getpid(), train_runs(spec, output, todo, ds, session, train_one)))
    except BaseException as exc:  # reported to the parent, which says what failed where
        kind = "expected" if type(exc).__name__ in _EXPECTED or isinstance(exc, SystemExit) else "bug"
        message = ("stopped (SIGTERM)" if isinstance(exc, SystemExit) and exc.code == 143 else
                   str(exc) if kind == "expected" else traceback.format_exc())
        results.put(("error", index, os.getpid(), (kind, message)))
        raise SystemExit(1) from None


def _in_workers(spec, output, todo, ds, train_one, workers, threads, session, bar):
    import multiprocessing
    import pickle
    import tempfile

    with tempfile.TemporaryDirectory(prefix="camri-workers-") as folder:
        # The job goes by file, not through the start-up pipe: a worker that dies while starting
        # (a script without the __main__ guard) must not leave this process writing to it forever.
        job = Path(folder) / "job.pickle"
        with open(job, "wb") as f:
            # train_one goes by reference (its module and name): the worker imports it.
            pickle.dump((spec, str(output), todo, ds, train_one), f, protocol=pickle.HIGHEST_PROTOCOL)
        return _run_workers(job, output, todo, workers, threads, session, bar)


def _run_workers(job, output, todo, workers, threads, session, bar):
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")  # TensorFlow is not fork-safe
    results = ctx.Queue()
    command = locks.COMMAND
    procs = [ctx.Process(target=_worker, name=f"camri-worker-{i + 1}",
                         args=(i, str(job), threads, session, command, results)) for i in range(workers)]
    outcomes = {}
    # SIGTERM (a scheduler's cancel, `kill`) unwinds this process like Ctrl-C, so that the
    # workers are stopped with it (they unwind too: locks released, nothing half-written)
    # instead of training on as orphans.
    import threading

    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        for p in procs:
            p.start()
        while len(outcomes) < len(procs) and (any(p.is_alive() for p in procs) or not results.empty()):
            try:
                message = results.get(timeout=1.0)
                outcomes[message[1]] = message
            except _queue.Empty:
                pass
            bar.n = sum(1 for p in todo if (Path(output) / "runs" / f"{p.run_id}.json").exists())
            bar.refresh()
    except BaseException:  # Ctrl-C or SIGTERM: stop the workers too (they unwind cleanly)
        for p in procs:
            if p.is_alive():
                p.terminate()
        # Read what they still send while they stop: a worker exits only once its last message
        # is through the pipe, so joining without reading could wait forever.
        while any(p.is_alive() for p in procs):
            try:
                results.get(timeout=0.1)
            except _queue.Empty:
                pass
        for p in procs:
            p.join()
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    for p in procs:
        p.join()
    trained, problems = [], []
    for i, p in enumerate(procs):
        status, _, pid, payload = outcomes.get(i, ("died", i, p.pid, None))
        if status == "done":
            trained += payload
        elif status == "error":
            kind, message = payload
            problems.append((kind, f"worker {i + 1} (process {pid}) stopped: {message}"))
        else:
            how = (f"was killed by signal {-p.exitcode}" if (p.exitcode or 0) < 0 else
                   f"exited with {p.exitcode} before it reported (its error, if any, is printed above; a Python "
                   "script that uses workers must guard its code with `if __name__ == '__main__':`)")
            problems.append(("expected", f"worker {i + 1} (process {pid}) {how}: the run it was training has no "
                                         "record and is left to the next resume (run the same command again)."))
    return trained, problems


def execute(spec, output, todo, ds, workers=1, threads=None, progress=True, desc="runs", *, train_one):
    """Train the planned runs ``todo`` of ``spec`` into ``output`` (each once, whatever other
    processes do) with ``train_one(spec, output, planned, ds)`` (a module-level function, so that
    a worker process can import it): in this process (``workers=1``) or in ``workers``
    processes, each with ``threads`` TensorFlow threads. Returns (the run ids trained here, {run id: holder} of the
    runs another program holds and still trains). A worker that failed or died is an error
    raised once the others are done; its run is left to the next resume."""
    from tqdm import tqdm

    workers = checks.check_int(workers, "workers", minimum=1)
    if threads is not None:
        checks.check_int(threads, "threads", minimum=1)
    session = uuid.uuid4().hex
    bar = tqdm(total=len(todo), desc=desc, unit="run", disable=not progress)
    try:
        if not todo:
            trained, problems = [], []
        elif workers == 1:
            set_threads(threads)
            trained, problems = train_runs(spec, output, todo, ds, session, train_one,
                                           on_done=lambda _: bar.update()), []
        else:
            trained, problems = _in_workers(spec, output, todo, ds, train_one, min(workers, len(todo)), threads,
                                            session, bar)
    finally:
        bar.close()
    if problems:
        text = "\n".join(message for _, message in problems)
        if any(kind == "bug" for kind, _ in problems):
            raise RuntimeError(text)
        raise ProtocolError(text)
    busy = {}
    for planned in todo:
        if planned.run_id in trained or recorded(output, planned.run_id):
            continue
        lock = locks.Lock(output, planned.run_id)
        if lock.acquire():  # nobody holds it: it was left (cannot happen without a failure)
            lock.release()
            continue
        busy[planned.run_id] = lock.holder
    return trained, busy


def busy_message(busy):
    """The runs other programs hold, in words (one line per holder)."""
    by_holder = {}
    for rid, holder in busy.items():
        by_holder.setdefault(json.dumps(holder, sort_keys=True), []).append(rid)
    lines = [f"{len(ids)} run(s) are being trained by {locks.describe(json.loads(h))}, so this process left them to "
             "it" for h, ids in by_holder.items()]
    return "\n".join(lines)
