"""Two model families on the same features: XGBoost (hist) and a PyTorch MLP, each for the use
case's task: a binary classifier (a probability) or a regressor (a number).

Both are deterministic for a seed, early-stop on the validation days, run on CUDA when the
`device` setting allows it, and end as an ONNX graph with one input, `features`, whose columns
are the FeatureService's features in order. A classifier handles class imbalance (about one
flight in five is late) without distorting probabilities: it is fitted on the unweighted log
loss, so its probabilities stay calibrated (the gate checks log loss, Brier and calibration),
and its decision threshold is chosen on the validation days to maximise F1 rather than left at
0.5. A regressor is fitted on the squared error; it has no threshold.
"""

from __future__ import annotations

import io
import time
import warnings
from dataclasses import dataclass, field

import numpy as np

from pipelines.errors import SettingsError
from pipelines.training.dataset import TrainingData


def resolve_device(setting: str) -> str:
    """`auto` → cuda when a CUDA device is usable by both libraries, else cpu; `cuda` without one is an error."""
    import torch

    available = torch.cuda.is_available()
    if setting == "cuda" and not available:
        raise SettingsError("PLATFORM_DEVICE=cuda but no CUDA device is visible; use auto or cpu")
    return "cuda" if setting == "cuda" or (setting == "auto" and available) else "cpu"


@dataclass
class TrainedModel:
    family: str
    task: str  # the spec's task: binary_classification or regression
    features: list[str]
    native: bytes  # XGBoost UBJ, or a torch state dict (loaded with weights_only=True)
    native_format: str
    onnx: bytes
    onnx_output: dict  # {"name": ..., "column": ...}: where the prediction (probability, value) is
    params: dict
    device: str
    seconds: float
    threshold: float | None = None  # a classifier's decision threshold; None for a regressor
    model: object = field(default=None, repr=False)  # the in-memory model, for native predictions

    def predict_native(self, x: np.ndarray) -> np.ndarray:
        """The probability of the positive class, or the predicted value."""
        if self.family == "xgboost":
            if self.task == "regression":
                return self.model.predict(x)
            return self.model.predict_proba(x)[:, 1]
        import torch

        with torch.no_grad():
            return self.model(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))).numpy()[:, 0]


def _best_f1_threshold(y: np.ndarray, p: np.ndarray) -> float:
    order = np.argsort(-p)
    tp = np.cumsum(y[order])
    precision, recall = tp / np.arange(1, len(y) + 1), tp / max(y.sum(), 1)
    f1 = np.where(precision + recall > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-12), 0)
    return float(p[order][int(np.argmax(f1))])


# What each task's model needs whatever its spec says (the spec's hyperparameters come on top).
XGBOOST_FIXED = {
    "binary_classification": {"tree_method": "hist", "eval_metric": "logloss"},
    "regression": {"tree_method": "hist", "objective": "reg:squarederror", "eval_metric": "rmse"},
}


def _xgboost_estimator(task: str, dask: bool = False):
    import xgboost as xgb

    if dask:
        import xgboost.dask  # noqa: F401 - the xgb.dask namespace

        return xgb.dask.DaskXGBClassifier if task == "binary_classification" else xgb.dask.DaskXGBRegressor
    return xgb.XGBClassifier if task == "binary_classification" else xgb.XGBRegressor


def train_xgboost(data: TrainingData, params: dict, *, seed: int, device: str) -> TrainedModel:
    x_train, y_train = data.xy("train")
    x_val, y_val = data.xy("validation")
    started = time.monotonic()
    params = {**params, **XGBOOST_FIXED[data.task], **_monotone(data)}
    model = _xgboost_estimator(data.task)(**params, device=device, random_state=seed, n_jobs=2)
    # numpy inputs: the booster's features are f0..fN, the names onnxmltools expects
    model.fit(x_train.to_numpy(), y_train.to_numpy(), eval_set=[(x_val.to_numpy(), y_val.to_numpy())], verbose=False)
    seconds = time.monotonic() - started
    model.set_params(device="cpu")  # predictions and export on the host
    return _xgboost_trained(model, data, params, seed, device, seconds)


def _monotone(data: TrainingData) -> dict:
    """XGBoost's monotone constraints for the features the gate requires to raise the prediction (never lower
    it): held by every tree, instead of found broken by the gate after training."""
    if not data.increasing:
        return {}
    return {"monotone_constraints": "(" + ",".join("1" if f in data.increasing else "0" for f in data.features) + ")"}


def train_xgboost_dask(data: TrainingData, params: dict, *, seed: int, client) -> TrainedModel:
    """The same model through `xgboost.dask` on a Dask cluster (`client`): the training rows are
    partitioned across the workers, which build the histograms together (scale-out past one
    machine's memory). Exported and stored exactly as `train_xgboost`'s."""
    import dask.array as da

    params = {**params, **XGBOOST_FIXED[data.task], **_monotone(data)}
    x_train, y_train = (a.to_numpy() for a in data.xy("train"))
    x_val, y_val = (a.to_numpy() for a in data.xy("validation"))
    workers = max(len(client.scheduler_info()["workers"]), 1)
    chunk = -(-len(x_train) // workers)  # one partition per worker
    started = time.monotonic()
    model = _xgboost_estimator(data.task, dask=True)(**params, random_state=seed)
    model.client = client
    model.fit(
        da.from_array(x_train, chunks=(chunk, -1)),
        da.from_array(y_train, chunks=chunk),
        eval_set=[(da.from_array(x_val, chunks=(len(x_val), -1)), da.from_array(y_val, chunks=len(y_val)))],
        verbose=False,
    )
    seconds = time.monotonic() - started
    local = _xgboost_estimator(data.task)(**params)  # the booster, out of the cluster, as a plain estimator
    local.load_model(bytearray(model.get_booster().save_raw(raw_format="ubj")))
    return _xgboost_trained(local, data, {**params, "dask_workers": workers}, seed, "cpu", seconds)


def _xgboost_trained(model, data: TrainingData, params: dict, seed: int, device: str, seconds: float) -> TrainedModel:
    from onnxmltools import convert_xgboost
    from onnxmltools.convert.common.data_types import FloatTensorType

    onnx_model = convert_xgboost(
        model, initial_types=[("features", FloatTensorType([None, len(data.features)]))], target_opset=15
    )
    # The stored booster is exactly the served one: the trees up to the best iteration (early stopping
    # keeps the trees after it in the estimator; predict_proba and the ONNX graph ignore them).
    native = bytes(model.get_booster()[: model.best_iteration + 1].save_raw(raw_format="ubj"))
    trained = TrainedModel(
        "xgboost",
        data.task,
        data.features,
        native,
        "xgboost-ubj",
        onnx_model.SerializeToString(),
        {"name": "probabilities", "column": 1}
        if data.task == "binary_classification"
        else {"name": "variable", "column": 0},
        {**params, "best_iteration": int(model.best_iteration), "seed": seed},
        device,
        seconds,
        model=model,
    )
    if data.task == "binary_classification":
        x_val, y_val = data.xy("validation")
        trained.threshold = _best_f1_threshold(y_val.to_numpy(), trained.predict_native(x_val.to_numpy()))
    return trained


def _mlp_class():
    import torch
    from torch import nn

    class TabularMLP(nn.Module):
        """Median imputation and standardisation inside the graph, so serving sends raw features; a
        classifier ends in a sigmoid, a regressor maps back from the standardised target."""

        def __init__(self, n_features: int, hidden: tuple[int, ...] = (64, 32), task: str = "binary_classification"):
            super().__init__()
            self.task = task
            self.register_buffer("median", torch.zeros(n_features))
            self.register_buffer("mean", torch.zeros(n_features))
            self.register_buffer("scale", torch.ones(n_features))
            self.register_buffer("target_mean", torch.zeros(1))
            self.register_buffer("target_scale", torch.ones(1))
            layers, width = [], n_features
            for size in hidden:
                layers += [nn.Linear(width, size), nn.ReLU()]
                width = size
            self.body = nn.Sequential(*layers, nn.Linear(width, 1))

        def forward(self, features):
            x = torch.where(torch.isnan(features), self.median, features)
            out = self.body((x - self.mean) / self.scale)
            if self.task == "binary_classification":
                return torch.sigmoid(out)
            return out * self.target_scale + self.target_mean

    return TabularMLP


def train_mlp(data: TrainingData, params: dict, *, seed: int, device: str) -> TrainedModel:
    import torch

    torch.manual_seed(seed)
    np.random.seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    x_train, y_train = (a.to_numpy() for a in data.xy("train"))
    x_val, y_val = (a.to_numpy() for a in data.xy("validation"))
    binary = data.task == "binary_classification"
    model = _mlp_class()(len(data.features), tuple(params["hidden"]), data.task)
    median = np.nanmedian(x_train, axis=0)
    median = np.where(np.isnan(median), 0.0, median)
    filled = np.where(np.isnan(x_train), median, x_train)
    scale = filled.std(axis=0)
    model.median.copy_(torch.tensor(median))
    model.mean.copy_(torch.tensor(filled.mean(axis=0)))
    model.scale.copy_(torch.tensor(np.where(scale > 0, scale, 1.0)))
    if not binary:  # the loss is taken on the standardised target, so every scale of label trains alike
        model.target_mean.fill_(float(y_train.mean()))
        model.target_scale.fill_(float(y_train.std()) or 1.0)
    model.to(device)
    optimiser = torch.optim.AdamW(model.parameters(), lr=params["lr"], weight_decay=params["weight_decay"])
    if binary:
        loss_fn = torch.nn.BCELoss()
    else:
        mse = torch.nn.MSELoss()

        def loss_fn(predicted, target):
            return mse(
                (predicted - model.target_mean) / model.target_scale, (target - model.target_mean) / model.target_scale
            )

    xt, yt = torch.tensor(x_train, device=device), torch.tensor(y_train, dtype=torch.float32, device=device)
    xv, yv = torch.tensor(x_val, device=device), torch.tensor(y_val, dtype=torch.float32, device=device)
    generator = torch.Generator().manual_seed(seed)
    best, best_state, stale, epochs = float("inf"), None, 0, 0
    started = time.monotonic()
    for _epoch in range(params["max_epochs"]):
        epochs += 1
        model.train()
        for batch in torch.randperm(len(xt), generator=generator).split(params["batch_size"]):
            optimiser.zero_grad()
            loss_fn(model(xt[batch])[:, 0], yt[batch]).backward()
            optimiser.step()
        model.eval()
        with torch.no_grad():
            val_loss = float(loss_fn(model(xv)[:, 0], yv))
        if val_loss < best - 1e-5:
            best, stale = val_loss, 0
            best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        else:
            stale += 1
            if stale >= params["patience"]:
                break
    seconds = time.monotonic() - started
    model = model.cpu()
    model.load_state_dict(best_state)
    model.eval()
    buffer = io.BytesIO()
    torch.save(best_state, buffer)
    trained = TrainedModel(
        "mlp",
        data.task,
        data.features,
        buffer.getvalue(),
        "torch-state-dict",
        _mlp_onnx(model, data),
        {"name": "prediction", "column": 0},
        {**params, "epochs": epochs, f"best_val_{'log_loss' if binary else 'scaled_mse'}": best, "seed": seed},
        device,
        seconds,
        model=model,
    )
    if binary:
        trained.threshold = _best_f1_threshold(y_val, trained.predict_native(x_val))
    return trained


def _mlp_onnx(model, data: TrainingData) -> bytes:
    import torch

    buffer = io.BytesIO()
    with warnings.catch_warnings():  # the TorchScript exporter: torch.export's needs onnxscript, not installed
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            model,
            (torch.zeros(1, len(data.features)),),
            buffer,
            input_names=["features"],
            output_names=["prediction"],
            dynamic_axes={"features": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )
    return buffer.getvalue()


def load_mlp(state: bytes, n_features: int, hidden: list[int], task: str = "binary_classification"):
    """A stored MLP, read with weights_only=True (no pickle code runs)."""
    import torch

    model = _mlp_class()(n_features, tuple(hidden), task)
    model.load_state_dict(torch.load(io.BytesIO(state), weights_only=True))
    return model.eval()


TRAINERS = {"xgboost": train_xgboost, "mlp": train_mlp}
