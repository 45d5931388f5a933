"""A real PyTorch training trial: a small MLP regression on synthetic data, on the GPU the worker
pinned for it (CUDA_VISIBLE_DEVICES). Falls back to the CPU where there is no GPU."""

import argparse
import os
import time

import torch

import sweepq

p = argparse.ArgumentParser()
p.add_argument("--lr", type=float, default=1e-3)
p.add_argument("--width", type=int, default=256)
p.add_argument("--epochs", type=int, default=20)
args = p.parse_args()
run = sweepq.init(config=vars(args))
cfg = run.config

device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
name = torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu"
print(
    f"device={name} CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')} "
    f"visible_count={torch.cuda.device_count()}",
    flush=True,
)
g = torch.Generator().manual_seed(0)
X = torch.randn(20000, 32, generator=g)
w_true = torch.randn(32, 1, generator=g)
y = torch.sin(X @ w_true) + 0.1 * torch.randn(20000, 1, generator=g)
X, y = X.to(device), y.to(device)
model = torch.nn.Sequential(
    torch.nn.Linear(32, cfg.width),
    torch.nn.ReLU(),
    torch.nn.Linear(cfg.width, cfg.width),
    torch.nn.ReLU(),
    torch.nn.Linear(cfg.width, 1),
).to(device)
opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
t0 = time.time()
for epoch in range(cfg.epochs):
    perm = torch.randperm(X.shape[0], device=device)
    for i in range(0, X.shape[0], 1000):
        idx = perm[i : i + 1000]
        loss = torch.nn.functional.mse_loss(model(X[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        full = torch.nn.functional.mse_loss(model(X), y).item()
    run.log({"loss": full, "epoch": epoch})
    if run.should_stop:
        break
print(f"trained {cfg.epochs} epochs in {time.time() - t0:.2f} s on {name}", flush=True)
run.finish()
