#!/bin/sh
# The geometry change measured: He et al. 2016 Table 2's original (resnet20) and full
# pre-activation (preact20) units at the reduced scale of results/he2016 (depth 20, the first
# 10,000 training images, 20 epochs of the he2016 recipe, the full test set, seed 0), built with
# the papers' symmetric padding of strided convs (the zoo's default). Their "same"-padding twins
# are the committed rows of results/he2016/runs.csv (resnet20-seed0, preact20-seed0..2).
# Data: python ../shared/data/cifar10/build.py ~/data  (real CIFAR-10, see its README).
set -e
DATA=${DATA:-$HOME/data}
python -m experiments.ablate --table 2 --rows 1 5 --depth 20 --epochs 20 --train-size 10000 \
  --dataset cifar10 --data-dir "$DATA" --seeds 1 --out results/geometry \
  --runs sweeps/geometry/runs --ledger results/geometry/runs.csv
