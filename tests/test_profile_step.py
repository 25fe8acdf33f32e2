"""benchmarks/profile_step.py's oneDNN account: verbose lines to times per primitive and problem,
and the side-by-side table (the benchmark itself needs PyTorch and is not run here)."""

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "profile_step.py"
spec = importlib.util.spec_from_file_location("profile_step", SCRIPT)
profile_step = importlib.util.module_from_spec(spec)
spec.loader.exec_module(profile_step)

STRIDED = "mb128_ic16oc32_ih32oh16kh3sh2dh0ph{}_iw32ow16kw3sw2dw0pw{}"


def exec_line(propagation, problem, ms, kind="convolution"):
    return (f"onednn_verbose,v1,primitive,exec,cpu,{kind},jit:avx2,{propagation},"
            f"src:f32::blocked:acdb::f0,,alg:convolution_direct,{problem},{ms}")


def test_execution_times_add_up_per_primitive_and_problem_without_padding():
    lines = ["onednn_verbose,v1,info,oneDNN v3.7.3 (commit N/A)",
             "onednn_verbose,v1,primitive,create:cache_miss,cpu,convolution,jit:avx2,"
             "backward_weights,src,,alg,mb1,0.5",
             '{"wall_ms": 1}',
             exec_line("backward_weights", STRIDED.format(0, 0), 2.0),
             exec_line("backward_weights", STRIDED.format(1, 1), 4.0),
             exec_line("forward_training", STRIDED.format(0, 0), 1.5)]
    problem = "mb128_ic16oc32_ih32oh16kh3sh2dh0_iw32ow16kw3sw2dw0"
    assert profile_step.onednn_times(lines) == {
        ("convolution", "backward_weights", problem): [2, 6.0],
        ("convolution", "forward_training", problem): [1, 1.5]}


def test_the_table_compares_mean_times_of_primitives_both_sides_ran():
    trainer = {("convolution", "backward_data", "p1"): [4, 20.0],
               ("convolution", "forward_training", "p1"): [2, 2.0],
               ("reorder", "undef", "16x16"): [1, 1.0]}
    peer = {("convolution", "backward_data", "p1"): [2, 8.0],
            ("convolution", "forward_training", "p1"): [1, 1.0]}
    rows = profile_step.primitives_report(trainer, peer).splitlines()[4:]
    assert rows == ["| convolution | backward_data | p1 | 4 | 5 | 4 | 1.25 |",
                    "| convolution | forward_training | p1 | 2 | 1 | 1 | 1 |"]
