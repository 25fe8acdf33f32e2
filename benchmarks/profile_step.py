"""Where a training step's time goes, op by op: the project's trainer against the PyTorch peer of
``compare_pytorch.py``, preact ResNet-20 at batch 128 on the CPU (the remaining gap to
PyTorch, ``results/speed/README.md``).

    pip install -r benchmarks/requirements.txt
    python benchmarks/profile_step.py                      # random images, 10 profiled steps
    python benchmarks/profile_step.py --data-dir ~/data     # real CIFAR-10 python batches
    python benchmarks/profile_step.py --onednn              # also oneDNN's time per primitive

Each side runs in its own process: a few unprofiled steps (tracing, oneDNN primitive creation),
then ``--steps`` profiled ones. The trainer side is the trainer's own pipeline, model, compile
and fused batch norm (``tf.profiler``; op time summed over TensorFlow's compute threads); the
PyTorch side is the peer's loop (``torch.profiler``, self CPU time). Prints, per side, the wall
time per step and the op types that take the most time per step. Op time is thread time: with
two threads it can exceed the wall time, and time waiting between ops does not show.

``--onednn`` adds oneDNN's own account (``ONEDNN_VERBOSE=profile_exec``): both sides call the
same oneDNN primitives on the same problems, so it lists, per primitive and problem, the mean
execution time on each side and their ratio (every execution counts, the warm-up steps'
too). It separates the kernels' cost from the framework around them: how fast the same
convolution runs under TensorFlow's thread pool and under PyTorch's OpenMP.
"""

import argparse
import collections
import glob
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # compare_pytorch, run as a script

BATCH = 128
CONTAINERS = ("PartitionedCall", "StatefulPartitionedCall", "__inference", "IteratorGetNext")


def keras_profile(data_dir: str | None, steps: int, warmup: int) -> dict:
    """Op types of the trainer's steps: ``{"wall_ms": per step, "ops": {type: ms per step}}``."""
    import trainers  # noqa: F401  (first: oneDNN on before TensorFlow loads)
    import tensorflow as tf

    from trainers.config import TrainConfig
    from trainers.data import load_data
    from trainers.fused import fused_batchnorm
    from trainers.train import build_model, compile_model

    dataset = {"dataset": "cifar10", "data_dir": data_dir} if data_dir else {
        "dataset": "synthetic"}
    config = TrainConfig(model="preact20", train_size=BATCH * (steps + warmup), test_size=BATCH,
                         epochs=2, **dataset)
    data = load_data(config)
    model = build_model(config, data)
    compile_model(model, config, steps + warmup)
    with fused_batchnorm():
        model.fit(data.epochs(0, 1), steps_per_epoch=warmup, verbose=0)
        with tempfile.TemporaryDirectory() as logdir:
            tf.profiler.experimental.start(logdir)
            start = time.perf_counter()
            model.fit(data.epochs(1, 2), steps_per_epoch=steps, verbose=0)
            wall = time.perf_counter() - start
            tf.profiler.experimental.stop()
            ops = xplane_op_times(glob.glob(f"{logdir}/**/*.xplane.pb", recursive=True)[-1])
    return {"wall_ms": 1000 * wall / steps, "ops": {k: v / steps for k, v in ops.items()}}


def xplane_op_times(path: str) -> dict:
    """``{op type: total ms}`` over the host plane's compute threads (events named
    ``name:Type``; function-call containers left out, so nothing counts twice)."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    space = xplane_pb2.XSpace()
    space.ParseFromString(Path(path).read_bytes())
    totals = collections.Counter()
    for plane in space.planes:
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):
                continue
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name
                kind = name.rsplit(":", 1)[-1] if ":" in name and "::" not in name else None
                if kind and not kind.startswith(CONTAINERS):
                    totals[kind] += event.duration_ps / 1e9
    return dict(totals)


def torch_profile(data_dir: str | None, steps: int, warmup: int) -> dict:
    """The PyTorch peer's steps: wall time and self CPU time per op type, per step."""
    import numpy as np
    from torch.profiler import ProfilerActivity, profile

    from compare_pytorch import cifar_train, torch_peer

    count = BATCH * (steps + warmup)
    if data_dir:
        images, labels = cifar_train(data_dir, count)
    else:
        rng = np.random.default_rng(0)
        images = rng.integers(0, 256, (count, 32, 32, 3), dtype=np.uint8)
        labels = rng.integers(0, 10, count)
    _, _, train_step = torch_peer(images, labels)

    def step(index):
        train_step(slice(index * BATCH, (index + 1) * BATCH))

    for index in range(warmup):
        step(index)
    with profile(activities=[ProfilerActivity.CPU]) as trace:
        start = time.perf_counter()
        for index in range(warmup, warmup + steps):
            step(index)
        wall = time.perf_counter() - start
    ops = {e.key: e.self_cpu_time_total / 1000 / steps for e in trace.key_averages()}
    return {"wall_ms": 1000 * wall / steps, "ops": ops}


def run_side(side: str, data_dir: str | None, steps: int, warmup: int,
             onednn: bool = False) -> dict:
    """One side in a fresh process (its own threads and oneDNN state). With ``onednn`` the
    result also holds ``"primitives"``: oneDNN's execution times (``onednn_times``)."""
    command = [sys.executable, __file__, "--worker", side, "--steps", str(steps),
               "--warmup", str(warmup)] + (["--data-dir", data_dir] if data_dir else [])
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": "",
           **({"ONEDNN_VERBOSE": "profile_exec"} if onednn else {})}
    done = subprocess.run(command, env=env, capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[1])
    if done.returncode:
        raise RuntimeError(f"{side} profile failed:\n{done.stderr[-3000:]}")
    lines = done.stdout.strip().splitlines()
    return {**json.loads(lines[-1]), **({"primitives": onednn_times(lines)} if onednn else {})}


def onednn_times(lines) -> dict:
    """``{(primitive, propagation, problem): [executions, total ms]}`` from oneDNN's verbose
    ``exec`` lines. Padding is left out of the problem: TensorFlow's SAME padding of a strided
    convolution pads one side and PyTorch's both, the same kernel and the same work."""
    times = {}
    for line in lines:
        fields = line.split(",")
        if len(fields) < 11 or fields[0] != "onednn_verbose" or fields[3] != "exec":
            continue
        key = (fields[5], fields[7], re.sub(r"p[hw]\d+", "", fields[-2]))
        count, total = times.get(key, (0, 0.0))
        times[key] = [count + 1, total + float(fields[-1])]
    return times


def primitives_report(trainer: dict, peer: dict) -> str:
    """A Markdown table of the primitives both sides ran: mean ms per execution on each side
    and the trainer's time over the peer's, the costliest (trainer total) first."""
    import pandas as pd

    from analysis.tables import markdown_table

    def mean_ms(times, key):
        count, total = times[key]
        return total / count

    rows = []
    for key in trainer.keys() & peer.keys():
        ours, theirs = mean_ms(trainer, key), mean_ms(peer, key)
        rows.append({"primitive": key[0], "propagation": key[1], "problem": key[2],
                     "executions (trainer)": trainer[key][0], "trainer ms": round(ours, 2),
                     "PyTorch ms": round(theirs, 2), "ratio": round(ours / theirs, 2),
                     "total": trainer[key][1]})
    table = pd.DataFrame(rows).sort_values("total", ascending=False).drop(columns="total")
    return ("## oneDNN primitives both sides ran: mean ms per execution\n\n"
            f"{markdown_table(table)}\n")


def report(side: str, result: dict, top: int) -> str:
    """A Markdown table of the ``top`` op types by ms per step, with the step's wall time."""
    import pandas as pd

    from analysis.tables import markdown_table

    ops = pd.Series(result["ops"]).sort_values(ascending=False)
    table = pd.DataFrame({"op": ops.index[:top], "ms per step": ops.values[:top].round(2),
                          "share of op time %": (100 * ops.values[:top] / ops.sum()).round(1)})
    return (f"## {side}: {result['wall_ms']:.0f} ms per step wall, {ops.sum():.0f} ms of op "
            f"time per step\n\n{markdown_table(table)}\n")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", help="real CIFAR-10 python batches (default: random "
                                           "images)")
    parser.add_argument("--steps", type=int, default=10, help="profiled steps per side")
    parser.add_argument("--warmup", type=int, default=5, help="unprofiled steps first")
    parser.add_argument("--top", type=int, default=15, help="op types listed per side")
    parser.add_argument("--onednn", action="store_true",
                        help="also compare oneDNN's execution time per primitive and problem")
    parser.add_argument("--worker", choices=["keras", "torch"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        profile_fn = keras_profile if args.worker == "keras" else torch_profile
        print(json.dumps(profile_fn(args.data_dir, args.steps, args.warmup)))
        return 0
    results = {}
    for side, label in (("keras", "trainer (TensorFlow)"), ("torch", "PyTorch peer")):
        results[side] = run_side(side, args.data_dir, args.steps, args.warmup, args.onednn)
        print(report(label, results[side], args.top))
    if args.onednn:
        print(primitives_report(results["keras"]["primitives"], results["torch"]["primitives"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
