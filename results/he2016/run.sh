#!/bin/sh
# The reduced-scale reproduction of He et al. 2016, Tables 1-3, exactly as committed here.
# Depth 20, the first 10,000 training images, 20 epochs of the he2016 recipe (drops at 50% and
# 75%, 0.01 warm-up for 400/64k of training), the full 10,000-image test set, seed 0.
# The three tables share one ledger (results/he2016/runs.csv, with history/<run>.csv) and one
# folder of run folders (sweeps/he2016/runs: weights and checkpoints, not committed): resnet20
# and preact20 are rows of all three and train once. Re-running skips every run in the ledger.
# Data: python ../shared/data/cifar10/build.py ~/data  (real CIFAR-10, see its README).
set -e
DATA=${DATA:-$HOME/data}
SHARED="--runs sweeps/he2016/runs --ledger results/he2016/runs.csv"
# Trained before the zoo padded strided convs symmetrically: Keras's "same" geometry, which the
# ledger's rows record (results/geometry/ measures the difference).
COMMON="--depth 20 --epochs 20 --train-size 10000 --dataset cifar10 --data-dir $DATA --strided-padding same"
# Tables 2 and 3 evaluated the test set after every epoch; Table 1 and the seed spread after
# every 5th and the last (--validation-every: the same weights train, in about 25% less time).
for TABLE in 2 3; do
  python -m experiments.ablate --table "$TABLE" $COMMON --seeds 1 \
    --out "results/he2016/table$TABLE" $SHARED
done
python -m experiments.ablate --table 1 $COMMON --seeds 1 --validation-every 5 \
  --out results/he2016/table1 $SHARED
# The seed-to-seed spread at this scale (report.py sets its "cannot tell" threshold from it):
# full pre-activation with seeds 0, 1, 2.
python -m experiments.ablate --table 2 --rows 5 $COMMON --seeds 3 --validation-every 5 \
  --out results/he2016/seed-spread $SHARED
python results/he2016/report.py
