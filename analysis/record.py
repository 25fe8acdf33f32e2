"""Train while recording Jastrzebski et al. 2018's measurements (Figures 2-4).

    python -m analysis.record --record-every 1 --model preact20 --dataset cifar10 --out runs/p20

Every flag and exit code of ``python -m trainers.train`` (``-h`` lists them); the run also
writes ``iterative_inference.csv/png`` (``analysis.callback``) every ``--record-every`` epochs.
Training sits below analysis and never imports it, so the trainer refuses ``--record-every``
> 0 and names this command; here ``trainers.train.train`` gets
``analysis.callback.recording_callbacks`` as its ``recorder``.
"""

import sys

from analysis.callback import recording_callbacks
from trainers.train import main as train_main


def main(argv=None) -> int:
    """CLI: ``trainers.train``'s, with the measurements recorded."""
    return train_main(argv, recorder=recording_callbacks, prog="python -m analysis.record")


if __name__ == "__main__":
    sys.exit(main())
