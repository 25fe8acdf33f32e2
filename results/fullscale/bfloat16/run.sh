#!/bin/sh
# float32 against mixed_bfloat16 in trainers.array_fit on real CIFAR-10, on the CPU (JAX
# backend, as on the GPU machine): resnet8, the first 5,000 training images, 3 epochs of the
# he2016 recipe (its shape kept), the first 5,000 test images, seeds 0 and 1 for each precision
# (the seed-to-seed spread is the noise the precisions are compared against).
# Data: python ../shared/data/cifar10/build.py /tmp/fs_cifar
set -e
DATA=${DATA:-/tmp/fs_cifar}
RUNS=${RUNS:-/tmp/fs_bf16}
for SEED in 0 1; do
  for PRECISION in float32 bfloat16; do
    FLAG=
    [ "$PRECISION" = bfloat16 ] && FLAG="--mixed-precision bfloat16"
    KERAS_BACKEND=jax python -m trainers.array_fit --model resnet8 --data-dir "$DATA" \
      --train-size 5000 --test-size 5000 --epochs 3 --seed "$SEED" $FLAG \
      --out "$RUNS/resnet8-$PRECISION-seed$SEED"
  done
done
python results/fullscale/bfloat16/report.py "$RUNS"
