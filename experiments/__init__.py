"""Experiments that combine training, measurement and export: the papers' studies.

``python -m experiments.ablate`` trains He et al. 2016's Tables 1-3; ``python -m
experiments.tune`` sweeps the zoo with KerasTuner (search spaces in ``experiments.spaces``,
trials through ``experiments.hypermodel``); ``python -m experiments.sharing`` trains
Jastrzebski et al. 2018's weight-sharing comparison (Figures 8-9); ``python -m
experiments.reproduce`` trains, measures and judges (``experiments.j18_claims``) their figures.
``experiments.he2016_claims`` judges He et al.'s claims; both papers' claims share
``experiments.claims``.

This is the top layer of the project: it may import ``analysis``, ``saved_models``,
``trainers`` and ``keras_resnets``; none of them imports it (``tests/test_layering.py``).
"""

import trainers  # noqa: F401  (first: switches oneDNN on before TensorFlow loads)
