"""Iterative inference in residual networks: the measurements of Jastrzebski et al. 2018.

    from analysis import analyze
    result = analyze(model, dataset)          # cosine, l2, drop, intermediate, borderline, unroll
    result.blocks                             # one row per residual block
    result.borderline                         # one row per (group, last block)
    result.unroll                             # one row per (update, alpha, group, extra step)
    both = analyze(model, {"train": train, "test": test})   # frames with a split column

``python -m analysis.run RUN_DIR`` analyses a finished training run (``MODEL.keras``: any
Keras functional residual network; ``--model preact20 --weights cifar10``: a shipped net);
``python -m analysis.record`` trains (``trainers.train``'s flags) while
``analysis.callback.IterativeInferenceCallback`` records cosine and l2 ratio; ``analysis.plots``
draws every figure of the project.

Layers (``tests/test_layering.py``): analysis imports ``trainers`` and ``keras_resnets`` only;
``experiments`` (the studies that combine training, measurement and export) imports analysis.
"""

import trainers  # noqa: F401  (first: switches oneDNN on before TensorFlow loads)

__all__ = ["MEASURES", "Analysis", "analyze", "block_frame"]


def __getattr__(name):
    """``analysis.frames``' names, imported on first use: the package's command lines
    (``python -m analysis.run``) parse their flags before TensorFlow loads."""
    if name not in __all__:
        raise AttributeError(f"module 'analysis' has no attribute {name!r}")
    from analysis import frames

    return getattr(frames, name)
