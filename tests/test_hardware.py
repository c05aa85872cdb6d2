"""Device decisions in one place: strategy selection, the mixed-precision policy, and TF_CONFIG checks."""
from __future__ import annotations

import json
import os

import keras
import numpy as np
import pytest
from conftest import ENV, biolens, one_line_error

from biolens import hardware
from biolens.models.image import compact_cnn


def test_cpu_setup_uses_the_default_strategy_in_float32():
    device, strategy = hardware.setup("auto")
    assert device.kind == "cpu" and device.strategy == "default" and not device.mixed_precision
    assert keras.mixed_precision.global_policy().name == "float32"
    assert "CPU" in device.describe()
    import tensorflow as tf

    assert strategy is tf.distribute.get_strategy()


def test_mixed_precision_policy_computes_in_float16_and_returns_float32_logits():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = compact_cnn((32, 32, 3), 3)
        convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
        assert convs and all(layer.compute_dtype == "float16" for layer in convs)
        assert all(layer.variable_dtype == "float32" for layer in convs)  # weights stay float32
        logits = model(np.zeros((2, 32, 32, 3), np.float32))
        assert keras.backend.standardize_dtype(logits.dtype) == "float32"
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_a_malformed_tf_config_is_one_line(slice_manifest, tmp_path, monkeypatch):
    monkeypatch.setitem(ENV, "TF_CONFIG", json.dumps({"cluster": {"chief": ["127.0.0.1:1"]}}))
    line = one_line_error(biolens("train", slice_manifest, "--out", tmp_path / "run", "--epochs", "1", check=False))
    assert "TF_CONFIG is not valid" in line and "docs/scaling.md" in line
    assert "TF_CONFIG" not in os.environ


def test_a_refused_command_answers_before_tensorflow_starts_and_its_later_start_is_quiet(tmp_path):
    """A typo costs a biologist well under a second, not TensorFlow's ~6 s start-up; when a command does need
    TensorFlow, the import runs inside the CLI's quiet hook, so its C++ chatter never reaches the screen."""
    import subprocess
    import sys

    script = """
import sys
from biolens import cli
sys.argv = ["biolens", *sys.argv[1:]]
try:
    cli.main()
except SystemExit as done:
    print("exit", done.code, "tensorflow" in sys.modules)
"""
    missing = str(tmp_path / "missing")
    for command in (["train", missing], ["detect", missing], ["cluster", missing], ["pretrain", missing],
                    ["predict", missing, missing], ["review", missing, missing], ["export", missing],
                    ["associate", "--genotypes", missing, "--phenotypes", missing, "--trait", "y"]):
        done = subprocess.run([sys.executable, "-c", script, *command, "--out", str(tmp_path / "out")],
                              capture_output=True, text=True, env={**ENV, "PYTHONWARNINGS": "ignore"}, timeout=120)
        assert done.stdout.split()[-3:] == ["exit", "2", "False"], (command, done.stdout, done.stderr)
        assert done.stderr.strip().splitlines()[-1].startswith("error:"), (command, done.stderr)
    quiet = """
from biolens import hardware
hardware.import_tensorflow_quietly_when_needed()
import keras
print(keras.ops.convert_to_numpy(keras.ops.ones(2)).sum())
"""
    env = {key: value for key, value in ENV.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    done = subprocess.run([sys.executable, "-c", quiet], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "2.0", done.stderr
    assert done.stderr.strip() == "", done.stderr


def test_version_is_printed_at_once_for_a_bug_report():
    import subprocess
    import sys

    from biolens import __version__

    script = """
import sys
from biolens import cli
sys.argv = ["biolens", "--version"]
try:
    cli.main()
except SystemExit as done:
    print("exit", done.code, "tensorflow" in sys.modules)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=ENV, timeout=120)
    assert done.stdout.split() == ["biolens", __version__, "exit", "0", "False"], (done.stdout, done.stderr)


def test_an_unknown_option_points_to_the_command_s_help_however_biolens_was_started():
    """`python -m biolens train --bogus` once pointed to `biolens -m biolens train --help`."""
    line = one_line_error(biolens("train", "--bogus", check=False))
    assert line.startswith("error: No such option: --bogus") and line.endswith("(see biolens train --help)"), line


def test_small_fits_run_side_by_side_on_one_blas_thread_each_with_results_in_order():
    """`map_on_cores` (lambda_GC's shuffles, PLINK's logistic scan): the serial results in order, each call on one BLAS
    thread, and with two cores two calls at the same time (they meet at a barrier a serial map would never pass)."""
    import threading

    from threadpoolctl import threadpool_info

    meeting = threading.Barrier(min(2, hardware.usable_cores()), timeout=30)
    blas_threads = []

    def fit(k: int) -> float:
        if k < 2:
            meeting.wait()
        blas_threads.extend(pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas")
        rng = np.random.default_rng(k)
        x = rng.normal(size=(200, 5))
        return float(np.linalg.lstsq(x, x @ np.arange(5.0), rcond=None)[0].sum())

    results = hardware.map_on_cores(fit, range(12))
    assert results == pytest.approx([10.0] * 12, rel=1e-9)  # each fit recovers 0 + 1 + 2 + 3 + 4, in its own place
    assert hardware.map_on_cores(lambda k: k * k, range(7)) == [k * k for k in range(7)]
    assert blas_threads and set(blas_threads) == {1}
