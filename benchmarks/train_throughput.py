"""Training throughput (images/s) of zoo models on this machine: strategy x XLA.

    python benchmarks/train_throughput.py                      # preact20, preact110
    python benchmarks/train_throughput.py --models preact20 --steps 10 --warmup 2

Each configuration runs in its own process (MirroredStrategy over two logical CPUs must be set
up before TensorFlow starts): the trainer's own pipeline (synthetic data, augmentation), model,
``compile_model`` and ``fit`` at the recipe's batch of 128; the first ``--warmup`` steps
(tracing, XLA compilation) are left out of the timing. Prints a Markdown table.
"""

import argparse
import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from analysis.tables import markdown_table

REPO = Path(__file__).resolve().parents[1]


def measure(model: str, strategy: str, jit: bool, steps: int, warmup: int,
            batch_size: int) -> dict:
    """One configuration, in this process: images/s over ``steps`` timed steps."""
    import trainers  # noqa: F401  (first: oneDNN on before TensorFlow loads)
    import tensorflow as tf

    if strategy == "mirrored":
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras

    from trainers.config import TrainConfig
    from trainers.data import load_data
    from trainers.strategy import check_jit_compile, make_strategy
    from trainers.train import build_model, compile_model

    config = TrainConfig(model=model, dataset="synthetic", batch_size=batch_size,
                         train_size=batch_size * (steps + warmup), test_size=batch_size,
                         strategy=strategy, jit_compile=jit, epochs=1)
    distribution = make_strategy(strategy)
    row = {"model": model, "strategy": strategy, "jit_compile": jit,
           "replicas": distribution.num_replicas_in_sync}
    try:
        check_jit_compile(jit, distribution)
    except ValueError:
        return {**row, "timed_steps": 0, "images_per_s": "n/a (XLA: one device per step)"}
    data = load_data(config)
    with distribution.scope():
        net = build_model(config, data, distribution.num_replicas_in_sync)
        compile_model(net, config, steps + warmup)
    ends = []
    timer = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: ends.append(time.perf_counter()))
    net.fit(data.train, epochs=1, callbacks=[timer], verbose=0)
    seconds = ends[-1] - ends[warmup - 1]
    return {**row, "timed_steps": len(ends) - warmup,
            "images_per_s": round((len(ends) - warmup) * batch_size / seconds, 1)}


def run_all(models, steps, warmup, batch_size):
    import pandas as pd

    rows = []
    for model, strategy, jit in itertools.product(models, ("default", "mirrored"), (False, True)):
        command = [sys.executable, __file__, "--worker", model, strategy, str(int(jit)),
                   "--steps", str(steps[model]), "--warmup", str(warmup),
                   "--batch-size", str(batch_size)]
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
        done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(rows[-1], file=sys.stderr, flush=True)
    return pd.DataFrame(rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["preact20", "preact110"])
    parser.add_argument("--steps", type=int, default=None,
                        help="timed steps (default: 12 for preact20, 4 for deeper models)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--worker", nargs=3, metavar=("MODEL", "STRATEGY", "JIT"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        model, strategy, jit = args.worker
        print(json.dumps(measure(model, strategy, jit == "1", args.steps, args.warmup,
                                 args.batch_size)))
        return 0
    steps = {m: args.steps or (12 if m == "preact20" else 4) for m in args.models}
    table = run_all(args.models, steps, args.warmup, args.batch_size)
    print(markdown_table(table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
