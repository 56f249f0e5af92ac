"""MLP family: a small torch network whose exported ONNX graph takes raw features and returns counts.

Input standardisation (train mean/std) and the log1p target scaling live inside the module as buffers
and ops, so neither the scorer nor the Dagster layer carries preprocessing state. Export uses the
legacy TorchScript exporter (``dynamo=False``): it still ships with torch 2.13 and needs no extra
package, while the default dynamo exporter requires ``onnxscript``, which this project does not install.
"""

from __future__ import annotations

import io
import math
import warnings
from typing import Any, Self

import numpy as np
import torch
from torch import nn

from ml.models.base import (ONNX_INPUT, ONNX_OPSET, ONNX_OUTPUT, CheckpointStore, EpochCallback, as_features,
                             resolve_params)

# Chosen by benchmarks/training_and_scoring.py: a few seconds on 2011, >= 1M rows/s in ONNX.
DEFAULTS: dict[str, Any] = {
    "hidden": 64,
    "layers": 3,
    "epochs": 200,
    "batch_size": 256,
    "learning_rate": 3e-3,
    "weight_decay": 1e-5,
    "patience": 50,
    "stop_after": 0,  # > 0: train exactly this many epochs and keep the last weights, no early stopping
    "seed": 0,
}

class _Net(nn.Module):
    def __init__(self, mean: torch.Tensor, std: torch.Tensor, hidden: int, layers: int) -> None:
        super().__init__()
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)
        blocks: list[nn.Module] = []
        width = mean.shape[0]
        for _ in range(layers):
            blocks += [nn.Linear(width, hidden), nn.ReLU()]
            width = hidden
        self.body = nn.Sequential(*blocks, nn.Linear(width, 1))

    def log_count(self, x: torch.Tensor) -> torch.Tensor:
        return self.body((x - self.mean) / self.std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.exp(self.log_count(x)) - 1.0  # not expm1: the legacy exporter has no symbolic for it


class MLP:
    """Seeded, deterministic MLP trained on log1p(count) with early stopping on validation MAE."""

    family = "mlp"

    def __init__(self, params: dict[str, Any] | None = None) -> None:
        self.params = resolve_params(self.family, DEFAULTS, params)
        self._net: _Net | None = None
        self._best_epoch = 0

    def refit_params(self) -> dict[str, Any]:
        """The recipe to refit on rows that include the validation rows: early stopping there would watch
        rows it trains on, so the refit runs the epochs this fit chose (its best one) and keeps the last."""
        self._fitted()
        return {**self.params, "stop_after": self._best_epoch}

    def fit(
        self,
        X_train: np.ndarray,
        y_train: np.ndarray,
        X_val: np.ndarray,
        y_val: np.ndarray,
        checkpoints: CheckpointStore | None = None,
        on_epoch: EpochCallback | None = None,
    ) -> Self:
        """Train; with ``checkpoints``, save state after every epoch and resume after the latest one."""
        previous = torch.are_deterministic_algorithms_enabled()
        torch.use_deterministic_algorithms(True)
        try:
            with torch.random.fork_rng(devices=[]):
                self._train(X_train, y_train, X_val, y_val, checkpoints, on_epoch)
        finally:
            torch.use_deterministic_algorithms(previous)
        return self

    def _train(self, X_train, y_train, X_val, y_val, checkpoints, on_epoch) -> None:
        p = self.params
        x = torch.from_numpy(as_features(X_train))
        log_y = torch.from_numpy(np.log1p(np.asarray(y_train, dtype=np.float32))).unsqueeze(1)
        x_val = torch.from_numpy(as_features(X_val))
        y_val_t = torch.from_numpy(np.asarray(y_val, dtype=np.float32)).unsqueeze(1)

        torch.manual_seed(p["seed"])
        std = x.std(dim=0)
        net = _Net(x.mean(dim=0), torch.where(std > 0, std, torch.ones_like(std)), p["hidden"], p["layers"])
        opt = torch.optim.Adam(net.parameters(), lr=p["learning_rate"], weight_decay=p["weight_decay"])
        state = {"best_mae": float("inf"), "best_state": net.state_dict(), "bad_epochs": 0}
        start = 1
        if checkpoints is not None and (latest := checkpoints.latest()) is not None:
            done, payload = latest
            saved = torch.load(io.BytesIO(payload), weights_only=True)
            net.load_state_dict(saved.pop("model"))
            opt.load_state_dict(saved.pop("optimizer"))
            state = saved
            start = done + 1

        fixed = p["stop_after"] > 0
        for epoch in range(start, (p["stop_after"] if fixed else p["epochs"]) + 1):
            if not fixed and state["bad_epochs"] >= p["patience"]:
                break
            for group in opt.param_groups:  # cosine decay as a pure function of epoch: nothing extra to checkpoint
                group["lr"] = p["learning_rate"] * 0.5 * (1 + math.cos(math.pi * (epoch - 1) / p["epochs"]))
            train_loss = _run_epoch(net, opt, x, log_y, p["batch_size"], seed=p["seed"] * 100_003 + epoch)
            with torch.no_grad():
                val_mae = float((net(x_val) - y_val_t).abs().mean())
            if fixed or val_mae < state["best_mae"]:
                best = {k: v.clone() for k, v in net.state_dict().items()}
                state = {"best_mae": val_mae, "best_state": best, "bad_epochs": 0, "best_epoch": epoch}
            else:
                state["bad_epochs"] += 1
            if checkpoints is not None:
                checkpoints.save(epoch, _checkpoint(net, opt, state))
            if on_epoch is not None:
                on_epoch(epoch, train_loss, val_mae)

        net.load_state_dict(state["best_state"])
        self._net, self._best_epoch = net.eval(), state.get("best_epoch", 0)

    def predict(self, X: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            out = self._fitted()(torch.from_numpy(as_features(X)))
        return out.numpy().ravel().astype(np.float64)

    def to_onnx(self) -> bytes:
        net = self._fitted()
        buf = io.BytesIO()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # the legacy exporter is a deliberate choice
            torch.onnx.export(
                net,
                (torch.zeros(1, net.mean.shape[0]),),
                buf,
                dynamo=False,
                input_names=[ONNX_INPUT],
                output_names=[ONNX_OUTPUT],
                dynamic_axes={ONNX_INPUT: {0: "rows"}, ONNX_OUTPUT: {0: "rows"}},
                opset_version=ONNX_OPSET,
            )
        return buf.getvalue()

    def _fitted(self) -> _Net:
        if self._net is None:
            raise RuntimeError("mlp: call fit() first")
        return self._net


def _run_epoch(
    net: _Net, opt: torch.optim.Optimizer, x: torch.Tensor, log_y: torch.Tensor, batch: int, seed: int
) -> float:
    """One pass in an order fixed by (seed, epoch), so a resumed run sees the same batches."""
    net.train()
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    total = 0.0
    for i in range(0, len(x), batch):
        idx = order[i : i + batch]
        opt.zero_grad()
        loss = nn.functional.mse_loss(net.log_count(x[idx]), log_y[idx])
        loss.backward()
        opt.step()
        total += float(loss.detach()) * len(idx)
    net.eval()
    return total / len(x)


def _checkpoint(net: _Net, opt: torch.optim.Optimizer, state: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    torch.save({"model": net.state_dict(), "optimizer": opt.state_dict(), **state}, buf)
    return buf.getvalue()
