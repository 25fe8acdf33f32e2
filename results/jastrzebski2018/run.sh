#!/bin/sh
# The reduced-scale reproduction of Jastrzebski et al. 2018, Figs. 2-8, exactly as committed here.
# Real CIFAR-10 (python ../shared/data/cifar10/build.py ~/data; see its README): the first 5,000
# training images, the first 2,000 test images, 10 epochs of each network's own recipe (the
# drops at the same fractions), seed 0, at most 5 blocks per stage; the wide nets narrowed
# (single representation 25 filters, avg-pooling 15, WRN 16/32/64; ResNet-110's own 16/32/64
# kept); the analyses on 2,000 examples of each split; sharing on pre-activation ResNet-32 with
# the top 3 blocks of each stage shared. Runs go to sweeps/ (not committed); re-running skips
# every network in results/jastrzebski2018/runs.csv and every analysis already made.
# Trained before the zoo padded strided convs symmetrically: Keras's "same" geometry, which
# the ledgers' rows record (--strided-padding same reuses them; the default refuses them).
set -e
DATA=${DATA:-$HOME/data}
python -m experiments.reproduce \
  --figures training cosine drop l2 intermediate borderline unroll sharing \
  --dataset cifar10 --data-dir "$DATA" \
  --out results/jastrzebski2018 --runs sweeps/jastrzebski2018/runs \
  --width-of j18-single=0.25 j18-avgpool=0.1 j18-wrn=0.1 --blocks 5 \
  --epochs 10 --train-size 5000 --test-size 2000 --limit 2000 \
  --sharing-depth 32 --sharing-shared 3 --strided-padding same
