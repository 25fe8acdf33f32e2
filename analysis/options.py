"""What an analysis can measure and the unrolling defaults, as plain data: ``analysis.run``'s
command line offers them before TensorFlow loads (``analysis.frames`` and ``analysis.unroll``
compute them)."""

MEASURES = ("cosine", "l2", "drop", "intermediate", "borderline", "unroll")
# Unrolling the last block (Jastrzebski et al. 2018, Figure 7): the scales of its step swept
# (the paper's "scaling factor on the output" is not given), its extra applications, and the
# update rules applied (``analysis.unroll.UPDATES``).
DEFAULT_ALPHAS = (1.0, 0.5, 0.2, 0.1, 0.05, 0.02, 0.01)
DEFAULT_STEPS = 20  # the paper's 20 extra steps
DEFAULT_UPDATES = ("scaled",)
