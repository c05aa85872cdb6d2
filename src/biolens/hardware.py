"""Where the computation runs: CPU or GPU(s), mixed precision, and the `tf.distribute` strategy.

All device decisions live here so that tasks stay the same on a laptop, a GPU workstation and several
machines (MultiWorkerMirroredStrategy from TF_CONFIG, docs/scaling.md; no home-made distribution layer).
"""
from __future__ import annotations

import contextlib
import importlib.abc
import importlib.util
import os
import platform
import sys
import time
from dataclasses import dataclass, field


@contextlib.contextmanager
def quiet_native_stderr():
    """Silence what TensorFlow's C++ side prints before its logging starts (CUDA probes, oneDNN notes).

    TF_CPP_MIN_LOG_LEVEL does not reach those lines, and they only confuse a biologist on a CPU machine.
    Python-level errors are unaffected: they are raised, not printed, inside this block.
    """
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real stderr (e.g. under some notebook front-ends)
        yield
        return
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


@contextlib.contextmanager
def one_blas_thread():
    """Run small matrix products in long loops (penalised model fits, IBSS) on one BLAS thread.

    OpenBLAS's threads wait on one another at every small product. On 2 idle cores a `LogisticRegressionCV` of
    1,600 x 460 took 20 s on both threads and 0.5 s on one (a ridge fit 0.2 s either way); with the cores shared
    (load 9) the ridge fit took 4-15 s instead of 0.34 s and the logistic one 112-133 s instead of 0.8-1.3 s
    (docs/performance.md). Large products (the pair scans) keep every thread.
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity, as a batch scheduler or container sets it)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def map_on_cores(function, items, most: int = 8) -> list:
    """`function` over `items` on one thread per core, each on one BLAS thread, results in order.

    For many independent small fits (lambda_GC's shuffles, PLINK's logistic pair scan): numpy's array operations
    release the GIL, so the fits run side by side, where one thread leaves a core idle between its small products
    and two BLAS threads wait on each other at every one (docs/performance.md, session 55: the 100 shuffles of a
    binary trait with age and sex 14 -> 5-7 s on 2 cores)."""
    from concurrent.futures import ThreadPoolExecutor

    items = list(items)
    workers = min(most, usable_cores(), len(items))
    with one_blas_thread():
        if workers <= 1:
            return [function(item) for item in items]
        with ThreadPoolExecutor(workers) as pool:
            return list(pool.map(function, items))


def import_tensorflow():
    """Import TensorFlow once, without its start-up chatter."""
    with quiet_native_stderr():
        import tensorflow

    return tensorflow


class _QuietTensorFlowImport(importlib.abc.MetaPathFinder):
    """Runs the first `import tensorflow`, wherever it happens (keras, a task, a reader), inside
    `quiet_native_stderr`, then steps aside."""

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        run_module = spec.loader.exec_module

        def exec_quietly(module):
            with quiet_native_stderr():
                run_module(module)

        spec.loader.exec_module = exec_quietly  # this loader instance serves tensorflow/__init__ only
        return spec


def import_tensorflow_quietly_when_needed() -> None:
    """The CLI's start: TensorFlow's import (about 6 s on 2 cores) waits until a command needs it, so `--help`,
    a bad option or a missing file answers at once; when it comes, its C++ chatter stays off the screen."""
    if "tensorflow" not in sys.modules and not any(isinstance(f, _QuietTensorFlowImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietTensorFlowImport())


@dataclass
class Device:
    kind: str                      # "cpu" or "gpu"
    gpus: list[str] = field(default_factory=list)
    mixed_precision: bool = False
    strategy: str = "default"

    def describe(self) -> str:
        if self.kind == "cpu":
            return f"CPU ({os.cpu_count()} cores)" + ("" if self.strategy == "default" else f"; strategy {self.strategy}")
        precision = ", mixed precision" if self.mixed_precision else ""
        return f"{len(self.gpus)} GPU ({', '.join(self.gpus)}{precision}; strategy {self.strategy})"


def setup(mixed_precision: str = "auto") -> tuple[Device, object]:
    """Configure TensorFlow for this machine and return the device summary and a distribution strategy.

    Args:
        mixed_precision: "auto" turns on `mixed_float16` on GPUs of compute capability 7.0 or newer,
            "on"/"off" force it.
    """
    import keras
    import tensorflow as tf

    with quiet_native_stderr():
        gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:  # already initialised in this process
            pass
    names = [_gpu_name(gpu) for gpu in gpus]
    use_mp = False
    if gpus and mixed_precision != "off":
        capability = tf.config.experimental.get_device_details(gpus[0]).get("compute_capability", (0, 0))
        use_mp = mixed_precision == "on" or (capability or (0, 0)) >= (7, 0)
    keras.mixed_precision.set_global_policy("mixed_float16" if use_mp else "float32")

    from biolens.engine import distributed

    if distributed.cluster() is not None:  # several machines (TF_CONFIG, or --workers/--worker-index)
        strategy, name = tf.distribute.MultiWorkerMirroredStrategy(), "MultiWorkerMirrored"
    elif len(gpus) > 1:
        strategy, name = tf.distribute.MirroredStrategy(), "Mirrored"
    else:
        strategy, name = tf.distribute.get_strategy(), "default"
    device = Device(kind="gpu" if gpus else "cpu", gpus=names, mixed_precision=use_mp, strategy=name)
    return device, strategy


def _gpu_name(gpu) -> str:
    import tensorflow as tf

    try:
        return tf.config.experimental.get_device_details(gpu).get("device_name", gpu.name)
    except Exception:  # details are best-effort across TF builds
        return gpu.name


def measure_matmul_gflops(n: int = 1024, seconds: float = 1.0) -> float:
    """Measured float32 matmul throughput of the default device, in GFLOP/s (a practical peak)."""
    import tensorflow as tf

    a = tf.random.uniform((n, n))
    b = tf.random.uniform((n, n))
    tf.linalg.matmul(a, b).numpy()  # warm-up
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        tf.linalg.matmul(a, b).numpy()
        count += 1
    elapsed = time.perf_counter() - start
    return 2.0 * n**3 * count / elapsed / 1e9


def total_memory_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    names = ["biolens", "tensorflow", "keras", "numpy", "scikit-learn", "pillow", "tifffile", "pandas", "matplotlib",
             "cyvcf2", "bed-reader", "pgenlib", "bgen", "biopython", "logomaker", "pyjaspar", "memelite", "msprime",
             "scanpy", "anndata", "igraph", "umap-learn", "scikit-image"]
    versions = {"python": platform.python_version()}
    for name in names:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def doctor() -> dict:
    """What `biolens doctor` prints: this machine, as TensorFlow sees it, with a measured speed figure."""
    import tensorflow as tf

    device, _ = setup()
    build = tf.sysconfig.get_build_info()
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "memory_gb": round(total_memory_bytes() / 1e9, 1),
        "device": device.describe(),
        "gpus": device.gpus,
        "mixed_precision": device.mixed_precision,
        "cuda": build.get("cuda_version", "not built with CUDA"),
        "cudnn": build.get("cudnn_version", "not built with cuDNN"),
        "matmul_gflops": round(measure_matmul_gflops(), 1),
        "versions": library_versions(),
    }
