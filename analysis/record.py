"""Train while recording Jastrzebski et al. 2018's measurements (Figures 2-4).

    python -m analysis.record --record-every 1 --model preact20 --dataset cifar10 --out runs/p20

Every flag and exit code of ``python -m trainers.train`` (``-h`` lists them), and
``--record-every N``: the run also writes ``iterative_inference.csv/png``
(``analysis.callback``) every N epochs. Training sits below analysis and never imports it, so
only this command measures: here ``trainers.train.train`` gets
``analysis.callback.recording_callbacks`` as its ``recorder``. The flags are parsed before
TensorFlow loads (``--help`` answers at once).
"""

import sys

from trainers.train import main as train_main


def main(argv=None) -> int:
    """CLI: ``trainers.train``'s, with ``--record-every`` and the measurements recorded."""
    return train_main(argv, recorder=recorder, prog="python -m analysis.record")


def recorder(config, data, run_dir) -> list:
    """``analysis.callback.recording_callbacks``, imported once training starts (it loads
    Keras)."""
    from analysis.callback import recording_callbacks

    return recording_callbacks(config, data, run_dir)


if __name__ == "__main__":
    sys.exit(main())
