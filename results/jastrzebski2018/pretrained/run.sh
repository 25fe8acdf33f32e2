#!/bin/sh
# Jastrzebski et al. 2018's measurements (Figs. 3-7) on the shipped, well-trained CIFAR-10 nets
# (keras_resnets.build(NET, weights="cifar10"): 89.15% and 88.98% test accuracy), exactly as
# committed here. Real CIFAR-10 (python ../shared/data/cifar10/build.py ~/data; see its
# docstring): all 10,000 test images and 10,000 training images (the first of epoch 0's
# shuffled order, seed 0), raw 0..255 images (the nets standardise them themselves), batch 128,
# every measure with its defaults. About 27 minutes per net on 2 shared CPU cores (the two ran
# side by side). Then the paper's claims, judged by the reduced-scale study's claim code.
set -e
DATA=${DATA:-$HOME/data}
OUT=results/jastrzebski2018/pretrained
for NET in preact20 resnet20; do
  python -m analysis.run --model "$NET" --weights cifar10 --data-dir "$DATA" \
    --split both --limit 10000 --out "$OUT/$NET"
done
python "$OUT/judge.py"
