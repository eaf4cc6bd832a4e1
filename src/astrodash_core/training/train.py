"""PyTorch training of an architecture from ``astrodash_core.nn`` (the ``train`` extra); exports numpy weights.

The torch module is built from the same layer specs the Numba forward pass runs, and its state dict maps
one-to-one onto the model file's weight names, so what was trained is exactly what is shipped.
"""
from __future__ import annotations

import time

import numpy as np


def build_torch(arch: list[dict], dropout: float = 0.3):
    """A torch.nn.Module computing the same function as ``astrodash_core.nn.Network`` (logits, no softmax).

    ``dropout`` acts on the inputs of the dense layers in training mode only (identity in eval mode, so the
    exported weights need no change at inference)."""
    import torch
    from torch import nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.spec = arch
            self.layers = nn.ModuleList(
                nn.Conv1d(l["in"], l["out"], l["k"], padding=l["k"] // 2) if l["type"] == "conv"
                else nn.Linear(l["in"], l["out"]) for l in arch)

        def forward(self, x):
            h = x[:, None, :]
            for spec, layer in zip(self.spec, self.layers):
                if spec["type"] == "conv":
                    h = torch.nn.functional.max_pool1d(torch.relu(layer(h)), spec["pool"])
                else:
                    h = layer(torch.nn.functional.dropout(h.flatten(1), dropout, self.training))
                    if spec.get("relu"):
                        h = torch.relu(h)
            return h

    return Net()


def export_weights(net) -> dict[str, np.ndarray]:
    return {k.removeprefix("layers."): v.detach().cpu().numpy().astype(np.float32) for k, v in net.state_dict().items()}


def load_weights(net, weights: dict[str, np.ndarray]) -> None:
    import torch

    net.load_state_dict({f"layers.{k}": torch.from_numpy(np.asarray(v)) for k, v in weights.items()})


def train_model(make_epoch, X_val, y_val, *, arch, seed: int, epochs: int, time_budget_s: float, log=print,
                batch_size: int = 128, lr: float = 2e-3, threads: int = 2):
    """Train on ``make_epoch(epoch) -> (X, y)`` (fresh augmented data each epoch); keep the weights with the
    best validation loss.  Returns (weights, history) with one history entry per epoch."""
    import torch

    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    net = build_torch(arch)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=0.05)
    Xv, yv = torch.from_numpy(X_val), torch.from_numpy(y_val)
    history, best, best_loss = [], None, np.inf
    t0 = time.time()
    first = make_epoch(0)
    steps_per_epoch = -(-int(1.1 * len(first[1])) // batch_size)
    total_steps, steps = epochs * (steps_per_epoch + 1), 0
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, epochs=epochs, steps_per_epoch=steps_per_epoch + 1,
                                                pct_start=0.1)
    for epoch in range(epochs):
        te = time.time()
        X, y = first if epoch == 0 else make_epoch(epoch)
        t_data = time.time() - te
        net.train()
        perm = torch.randperm(len(y))
        Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
        total, correct, seen = 0.0, 0, 0
        for s in range(0, len(y), batch_size):
            idx = perm[s:s + batch_size]
            xb, yb = Xt[idx], yt[idx]
            opt.zero_grad()
            out = net(xb)
            loss = loss_fn(out, yb)
            loss.backward()
            opt.step()
            if steps < total_steps - 1:
                sched.step()
                steps += 1
            total += loss.item() * len(yb)
            correct += int((out.argmax(1) == yb).sum())
            seen += len(yb)
        net.eval()
        with torch.no_grad():
            out = torch.cat([net(Xv[s:s + 1024]) for s in range(0, len(yv), 1024)])
            vloss = float(torch.nn.functional.cross_entropy(out, yv))
            vacc = float((out.argmax(1) == yv).float().mean())
            vsub = float(((out.argmax(1) // 18) == (yv // 18)).float().mean())
        entry = {"epoch": epoch + 1, "train_loss": round(total / seen, 4), "train_acc": round(correct / seen, 4),
                 "val_loss": round(vloss, 4), "val_class_acc": round(vacc, 4), "val_subtype_acc_argmax": round(vsub, 4),
                 "data_s": round(t_data, 1), "wall_s": round(time.time() - t0, 1)}
        history.append(entry)
        log("epoch " + " ".join(f"{k}={v}" for k, v in entry.items()))
        if vloss < best_loss:
            best_loss, best = vloss, export_weights(net)
        if time.time() - t0 > time_budget_s:
            log(f"time budget of {time_budget_s:.0f} s reached after {epoch + 1} epochs")
            break
    return best, history
