"""The compute planner: the device, runtime, threads and rows per call of a scoring job, and the device of a training
run, chosen from a calibration measured on this machine rather than from constants.

`platform calibrate` times each scoring option (ONNX Runtime on one thread and on every core, XGBoost's
`inplace_predict` on the CPU and, where present, on CUDA) at batch sizes from 1 to 65,536 rows of an XGBoost model
of the flights model's shape fitted on synthetic rows, and, where CUDA is present, XGBoost's `hist` fit on the CPU and
on CUDA at two training sizes; it stores that under the data root
with the machine's fingerprint (CPU model, cores, CUDA devices, library versions). A plan made on other hardware
than the calibration's calibrates again first.

Scoring: for `rows` items, each option's cost is interpolated (log-log) from its calibrated batch costs, and the
fastest option wins. A batch job is scored in calls of at most CALL_BYTES of float32 inputs (a runtime's cost per row
only falls with the batch, so a call is as large as memory allows); an online call is one call of its items: the
fastest option within the latency budget wins (the spec's serving objective), else the fastest, said so.
Training: CUDA only from the row count where the calibration shows its fit faster than the CPU's.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import os
import platform
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pipelines.settings import Settings

log = logging.getLogger(__name__)

BATCH_SIZES = (1, 16, 256, 4096, 65536)
TRAINING_ROWS = (20_000, 200_000)
CALIBRATION_FEATURES = 23  # the flights model's width; cost grows with it about linearly, see `_scaled`
# The float32 inputs of one batch call: about 2.9 million rows of 23 features. Measured (bench.compute_planner,
# 2 cores): the booster scored 1,000,000 rows in two calls 1.13x-1.49x slower than in one, over three runs.
CALL_BYTES = 256 << 20
ONNXRUNTIME, XGBOOST = "onnxruntime", "xgboost"
# Options predicted within 10% of the fastest are a tie: on a loaded 2-core machine the same call times 0.8x-1.3x
# from run to run (bench.compute_planner), so a tie goes to the fewest threads, on the CPU.
NOISE = 1.10


@dataclass(frozen=True)
class Option:
    runtime: str  # onnxruntime | xgboost
    device: str  # cpu | cuda
    threads: int

    @property
    def key(self) -> str:
        return f"{self.runtime}/{self.device}/{self.threads}"

    @classmethod
    def parse(cls, key: str) -> Option:
        runtime, device, threads = key.split("/")
        return cls(runtime, device, int(threads))


@dataclass
class Calibration:
    hardware: dict
    features: int
    measured_at: str
    scoring: dict[str, dict[str, float]]  # option key -> {batch size: seconds per call}
    training: dict[str, dict[str, float]]  # device -> {rows: seconds per fit}

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        partial.write_text(json.dumps(asdict(self), indent=2))
        os.replace(partial, path)

    @classmethod
    def load(cls, path: Path) -> Calibration:
        return cls(**json.loads(path.read_text()))


@dataclass
class Plan:
    runtime: str
    device: str
    threads: int
    call_rows: int
    predicted_seconds: float
    within_budget: bool | None  # None without a latency budget
    reason: str
    calibrated_at: str = ""
    alternatives: dict[str, float] = field(default_factory=dict)  # option key -> predicted seconds

    def as_dict(self) -> dict:
        return asdict(self)


def calibration_path(settings: Settings) -> Path:
    return settings.data_root / "compute" / "calibration.json"


def hardware() -> dict:
    """What the calibration depends on: the CPU, its cores, the CUDA devices, the scoring libraries."""
    import onnxruntime
    import xgboost

    cpuinfo = Path("/proc/cpuinfo")  # Linux; elsewhere the platform module's name
    models = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
              if line.startswith("model name")] if cpuinfo.is_file() else []  # fmt: skip
    cpu = models[0] if models else platform.processor() or platform.machine()
    return {"cpu": cpu, "cores": os.cpu_count() or 1, "cuda": cuda_devices(),
            "onnxruntime": onnxruntime.__version__, "xgboost": xgboost.__version__}  # fmt: skip


def cuda_devices() -> list[str]:
    """The NVIDIA devices `nvidia-smi -L` lists (none without the driver)."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    try:
        listed = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=20, check=True).stdout  # nosec B603 # a fixed command, found on PATH
    except (subprocess.SubprocessError, OSError):
        return []
    return [line.split(" (UUID")[0] for line in listed.splitlines() if line.startswith("GPU ")]


def options(hw: dict) -> list[Option]:
    cores = int(hw["cores"])
    found = [Option(ONNXRUNTIME, "cpu", 1), Option(XGBOOST, "cpu", cores)]
    if cores > 1:
        found.append(Option(ONNXRUNTIME, "cpu", cores))
    if hw["cuda"]:
        found.append(Option(XGBOOST, "cuda", cores))
    return found


def calibrate(settings: Settings, sizes: tuple[int, ...] = BATCH_SIZES,
              training_rows: tuple[int, ...] = TRAINING_ROWS) -> Calibration:  # fmt: skip
    """Measure every option on this machine and store the calibration under the data root."""
    import numpy as np

    from pipelines.export.onnx import OnnxScorer

    hw = hardware()
    data = synthetic_rows(max(max(training_rows), max(sizes)))
    trained = reference_model(data)
    x = np.ascontiguousarray(data[0][: max(sizes)], dtype=np.float32)
    scoring = {}
    for option in options(hw):
        if option.runtime == ONNXRUNTIME:
            scorer = OnnxScorer(trained.onnx, trained.onnx_output, threads=option.threads)
            call = scorer.predict
        else:
            booster = trained.model.get_booster()
            booster.set_param({"device": option.device, "nthread": option.threads})
            call = booster.inplace_predict
        scoring[option.key] = {str(n): _seconds(call, x[:n]) for n in sizes}
    # Without CUDA every fit runs on the CPU: nothing to choose, nothing to measure.
    training = {}
    if hw["cuda"]:
        training = {d: {str(n): fit_synthetic(data, n, d).seconds for n in training_rows} for d in ("cpu", "cuda")}
    calibration = Calibration(hw, CALIBRATION_FEATURES, dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                              scoring, training)  # fmt: skip
    calibration.save(calibration_path(settings))
    return calibration


def current_calibration(settings: Settings) -> Calibration:
    """The stored calibration, measured again first when there is none or the hardware changed since."""
    path = calibration_path(settings)
    if path.exists():
        stored = Calibration.load(path)
        now = hardware()
        if stored.hardware == now:
            return stored
        log.warning("the hardware changed since the calibration (%s, now %s): calibrating again", stored.hardware, now)
    else:
        log.warning("no calibration at %s: calibrating this machine (`platform calibrate`)", path)
    return calibrate(settings)


def plan_scoring(
    calibration: Calibration,
    rows: int,
    features: int,
    runtimes: tuple[str, ...] = (ONNXRUNTIME, XGBOOST),
    latency_budget_ms: float | None = None,
) -> Plan:
    """The option, and the rows per call, for scoring `rows` items of `features` features with the runtimes the
    model has: a batch job (no budget) in calls bounded by CALL_BYTES, or one online call within `latency_budget_ms`."""
    if rows < 1:
        raise ValueError(f"rows must be at least 1, not {rows}")
    candidates = [Option.parse(k) for k in calibration.scoring if Option.parse(k).runtime in runtimes]
    if not candidates:
        raise ValueError(f"the calibration has none of the runtimes {runtimes}: run `platform calibrate`")
    scale = _scaled(features, calibration.features)
    costs = {}
    for option in candidates:
        curve = {int(n): s * scale for n, s in calibration.scoring[option.key].items()}
        chunk = rows if latency_budget_ms is not None else min(rows, max(1, CALL_BYTES // (4 * max(features, 1))))
        full, rest = divmod(rows, chunk)
        costs[option] = (full * _interpolate(curve, chunk) + (_interpolate(curve, rest) if rest else 0.0), chunk)
    order = sorted(costs, key=lambda o: (costs[o][0], o.threads))
    within = None
    pool = order
    if latency_budget_ms is not None:
        fitting = [o for o in order if costs[o][0] * 1000 <= latency_budget_ms]
        within, pool = bool(fitting), fitting or order
    # Cores are shared (the other tasks, the service's requests): more threads, or a GPU, only when they are
    # predicted to pay more than the calibration's noise.
    close = [o for o in pool if costs[o][0] <= costs[pool[0]][0] * NOISE]
    chosen = min(close, key=lambda o: (o.device != "cpu", o.threads, costs[o][0]))
    seconds, chunk = costs[chosen]
    runner_up = next((o for o in order if o != chosen), None)
    reason = f"{chosen.key} predicted {seconds * 1000:.3g} ms for {rows} rows of {features} features"
    if chunk < rows:
        reason += f" in calls of {chunk}"
    if runner_up is not None and seconds:
        reason += f", {costs[runner_up][0] / seconds:.2f}x faster than {runner_up.key}"
    if within is not None:
        reason += f"; {'within' if within else 'over'} the {latency_budget_ms:g} ms budget"
    return Plan(chosen.runtime, chosen.device, chosen.threads, chunk, seconds, within, reason,
                calibration.measured_at, {o.key: c[0] for o, c in costs.items()})  # fmt: skip


def plan_training(calibration: Calibration, rows: int) -> tuple[str, str]:
    """The device of an XGBoost fit of `rows` training rows, and why: CUDA only where the calibration shows it
    faster than the CPU at that size."""
    if "cuda" not in calibration.training:
        return "cpu", "no CUDA device on this machine's calibration"
    cpu = _interpolate({int(n): s for n, s in calibration.training["cpu"].items()}, rows)
    gpu = _interpolate({int(n): s for n, s in calibration.training["cuda"].items()}, rows)
    device = "cuda" if gpu < cpu else "cpu"
    return device, f"calibrated fit of {rows} rows: CUDA {gpu:.3g} s, CPU {cpu:.3g} s"


def _interpolate(curve: dict[int, float], rows: int) -> float:
    """Seconds for one call of `rows` rows: log-log between the calibrated sizes; beyond them, per row."""
    sizes = sorted(curve)
    if rows <= sizes[0]:
        return curve[sizes[0]]
    if rows >= sizes[-1]:
        return curve[sizes[-1]] * rows / sizes[-1]
    for low, high in zip(sizes, sizes[1:], strict=False):
        if low <= rows <= high:
            t = (math.log(rows) - math.log(low)) / (math.log(high) - math.log(low))
            return math.exp(math.log(curve[low]) + t * (math.log(curve[high]) - math.log(curve[low])))
    raise AssertionError("unreachable")


def _scaled(features: int, calibrated: int) -> float:
    """Scoring cost per calibrated feature width: trees read a row's features once, ORT copies them once."""
    return max(features, 1) / max(calibrated, 1)


def _seconds(call, x, budget_s: float = 0.5) -> float:
    """The median seconds of `call(x)` over repeats filling about `budget_s` (after one warm-up)."""
    import statistics

    call(x)
    times = []
    deadline = time.perf_counter() + budget_s
    while len(times) < 5 or (time.perf_counter() < deadline and len(times) < 200):
        started = time.perf_counter()
        call(x)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def reference_model(data=None):
    """The model every option is timed on: the platform's XGBoost trainer on 20,000 synthetic rows."""
    return fit_synthetic(synthetic_rows(20_000) if data is None else data, 20_000, "cpu")


def synthetic_rows(rows: int, features: int = CALIBRATION_FEATURES, seed: int = 0):
    """A learnable problem of the flights model's width: (features, labels)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, features)).astype("float32")
    logit = 1.2 * x[:, 0] - 0.8 * x[:, 1] + 0.5 * x[:, 2] * x[:, 3] - 1.3
    y = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype("int64")
    return x, y


def fit_synthetic(data, rows: int, device: str):
    """The platform's XGBoost trainer on the first `rows` synthetic rows."""
    from pipelines.training.trainers import train_xgboost
    from pipelines.usecases.spec import HYPERPARAMETERS

    return train_xgboost(training_data(data, rows), HYPERPARAMETERS["xgboost"], seed=0, device=device)


def training_data(data, rows: int):
    """The first `rows` synthetic rows as the trainers take them (70/15/15 split)."""
    import datetime as _dt

    import numpy as np
    import pandas as pd

    from pipelines.training.dataset import TrainingData, TrainingWindow

    x, y = data[0][:rows], data[1][:rows]
    names = [f"f{i}" for i in range(x.shape[1])]
    frame = pd.DataFrame(x, columns=names).assign(label=y)
    cut = np.arange(rows)
    frame["split"] = np.where(cut < rows * 0.7, "train", np.where(cut < rows * 0.85, "validation", "holdout"))
    window = TrainingWindow(_dt.date(2013, 1, 1), _dt.date(2013, 1, 3), _dt.date(2013, 1, 4), _dt.date(2013, 1, 5))
    return TrainingData(frame, names, window, "label", "id", "binary_classification")
