"""Seconds for the iterative-inference analysis of a foreign model vs. the same zoo model.

    python benchmarks/foreign_analysis_speed.py                  # preact20, 1,024 images
    python benchmarks/foreign_analysis_speed.py --model resnet56 --images 4096

The foreign model is the zoo model rebuilt as a plain Keras functional graph of its own layers
(``keras_resnets.graph.functional_twin``: Add merges, no ``ResidualUnit``), so both run the
same layers and weights and any difference is the cost of the graph path (blocks found from the
graph, sub-models between them). Times each pass of ``analysis.frames.analyze`` (cosine + l2 +
intermediate; dropping; unrolling) on random 32x32 images for both, tracing included as a user
would see it: ``--repeats`` times each, alternating which model goes first, keeping the fastest
(on a shared machine the other load only ever adds time). Prints a Markdown table with the
foreign/zoo ratio (the goal: within 1.2x).
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import trainers  # noqa: E402,F401  (first: oneDNN on before TensorFlow loads)
import pandas as pd  # noqa: E402

import keras_resnets  # noqa: E402
from analysis.frames import analyze  # noqa: E402
from analysis.report import markdown_table  # noqa: E402
from analysis_speed import PASSES, synthetic  # noqa: E402  (this folder's benchmark)
from keras_resnets.graph import functional_twin  # noqa: E402


def seconds(model, data, measures: str, steps: int) -> float:
    """Wall seconds of one ``analyze`` pass, tracing included."""
    start = time.perf_counter()
    analyze(model, data, measures, steps=steps, progress=False)
    return time.perf_counter() - start


def fastest(zoo, foreign, data, measures: str, steps: int, repeats: int) -> tuple:
    """The fastest of ``repeats`` timings of the pass for each model, the first model
    alternating between repeats."""
    times = {"zoo": [], "foreign": []}
    for repeat in range(repeats):
        order = [("zoo", zoo), ("foreign", foreign)]
        for name, model in order if repeat % 2 == 0 else order[::-1]:
            times[name].append(seconds(model, data, measures, steps))
    return min(times["zoo"]), min(times["foreign"])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="preact20")
    parser.add_argument("--images", type=int, default=1024)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=20, help="unrolling steps")
    parser.add_argument("--repeats", type=int, default=2, help="timings kept: the fastest")
    args = parser.parse_args(argv)
    if min(args.images, args.batch_size, args.repeats) < 1:
        parser.error("--images, --batch-size and --repeats must be positive")
    data = synthetic(args.images, args.batch_size)
    zoo = keras_resnets.build(args.model)
    foreign = functional_twin(zoo)
    rows = []
    for name, measures in PASSES.items():
        zoo_s, foreign_s = fastest(zoo, foreign, data, measures, args.steps, args.repeats)
        rows.append({"pass": name, "zoo s": zoo_s, "foreign s": foreign_s,
                     "foreign / zoo": foreign_s / zoo_s})
    total = {key: sum(row[key] for row in rows) for key in ("zoo s", "foreign s")}
    rows.append({"pass": "total", **total, "foreign / zoo": total["foreign s"] / total["zoo s"]})
    print(f"{args.model} vs its functional twin, {args.images} synthetic 32x32 images, batch "
          f"{args.batch_size}, fastest of {args.repeats}, {os.cpu_count()} CPUs\n\n"
          f"{markdown_table(pd.DataFrame(rows), digits=3)}")


if __name__ == "__main__":
    main()
