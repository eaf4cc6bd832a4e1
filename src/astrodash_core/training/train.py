"""PyTorch training of an architecture from ``astrodash_core.nn`` (the ``train`` extra); exports numpy weights.

The torch module is built from the same layer specs the Numba forward pass runs, and its state dict maps
one-to-one onto the model file's weight names, so what was trained is exactly what is shipped.
"""
from __future__ import annotations

import time
from typing import Any

import numpy as np

from .. import labels


def build_torch(arch: list[dict], dropout: float = 0.3):
    """A torch.nn.Module computing the same function as ``astrodash_core.nn.Network`` (logits, no softmax).

    ``dropout`` acts on the inputs of the dense layers in training mode only (identity in eval mode, so the
    exported weights need no change at inference)."""
    import torch
    from torch import nn

    from ..nn import is_transformer

    if is_transformer(arch):
        return build_torch_transformer(arch)

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


#: Dropout of the transformer's attention and feed-forward blocks in training (identity in eval mode).
TRANSFORMER_DROPOUT = 0.1


def build_torch_transformer(arch: list[dict], dropout: float = TRANSFORMER_DROPOUT, nw: int | None = None):
    """The torch module of a transformer spec (``astrodash_core.nn.transformer``) on ``nw``-bin rows (default
    the shipped grid's): logits, no softmax.  Its ``layers.{i}`` are the spec's layers, so its state dict is the
    model file's weights; the encoder layers are ``torch.nn.TransformerEncoderLayer`` (pre-LN, exact GELU)."""
    if nw is None:
        from ..grid import DEFAULT_GRID

        nw = DEFAULT_GRID.nw
    import torch
    from torch import nn

    class PatchEmbed(nn.Module):
        def __init__(self, patch: int, dim: int, tokens: int):
            super().__init__()
            self.patch = patch
            lin = nn.Linear(patch, dim)
            self.weight, self.bias = lin.weight, lin.bias
            self.pos = nn.Parameter(0.02 * torch.randn(tokens, dim))

        def forward(self, x):
            p = x.reshape(x.shape[0], -1, self.patch)
            return p @ self.weight.T + self.bias + self.pos

    class MeanPool(nn.Module):
        def forward(self, h):
            return h.mean(dim=1)

    def layer(spec):
        t = spec["type"]
        if t == "patch_embed":
            return PatchEmbed(spec["patch"], spec["dim"], tokens)
        if t == "encoder":
            return nn.TransformerEncoderLayer(spec["dim"], spec["heads"], spec["ffn"], dropout=dropout,
                                              activation="gelu", batch_first=True, norm_first=True)
        if t == "layernorm":
            return nn.LayerNorm(spec["dim"])
        if t == "meanpool":
            return MeanPool()
        return nn.Linear(spec["in"], spec["out"])

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.spec = arch
            self.layers = nn.ModuleList(layer(spec) for spec in arch)

        def forward(self, x):
            h = x
            for mod in self.layers:
                h = mod(h)
            return h

    tokens = nw // int(arch[0]["patch"])
    return Net()


def export_weights(net) -> dict[str, np.ndarray]:
    return {k.removeprefix("layers."): v.detach().cpu().numpy().astype(np.float32) for k, v in net.state_dict().items()}


def load_weights(net, weights: dict[str, np.ndarray]) -> None:
    import torch

    net.load_state_dict({f"layers.{k}": torch.from_numpy(np.asarray(v)) for k, v in weights.items()})


def soft_targets(age_sigma: float, smoothing: float) -> np.ndarray:
    """Target distribution for each true class [n_classes, n_classes]: the true subtype's age bins weighted
    by a Gaussian of the bin distance (``age_sigma`` bins; ages of neighbouring bins are genuinely close), plus
    ``smoothing`` spread uniformly over all classes."""
    n_types, n_ages = labels.N_TYPES, labels.N_AGE_BINS
    d = np.arange(n_ages)[:, None] - np.arange(n_ages)[None, :]
    ages = np.exp(-0.5 * (d / age_sigma) ** 2) if age_sigma > 0 else (d == 0).astype(float)
    ages /= ages.sum(axis=1, keepdims=True)
    t = np.zeros((labels.N_CLASSES, labels.N_CLASSES))
    for k in range(n_types):
        sl = slice(k * n_ages, (k + 1) * n_ages)
        t[sl, sl] = ages
    return ((1 - smoothing) * t + smoothing / labels.N_CLASSES).astype(np.float32)


#: The shipped models' loss settings (recorded in each model file's provenance).
LOSS: dict[str, Any] = {"kind": "hierarchical", "age_sigma": 0.6, "smoothing": 0.02, "type_weight": 1.0,
                        "broad_weight": 0.5}


def hierarchical_loss(*, age_sigma: float = LOSS["age_sigma"], smoothing: float = LOSS["smoothing"],
                      type_weight: float = LOSS["type_weight"], broad_weight: float = LOSS["broad_weight"]):
    """Loss over the 306 classes plus the negative log of the probability *summed* over the true subtype's
    ages and over the true broad type's subtypes.  What the product reports is exactly those sums (best
    subtype, broad type), so they are trained for directly instead of only through the exact age bin.

    A partial label (``y >= labels.N_CLASSES``: a subtype at unknown age, a broad type, Ib or Ic; see
    ``labels.partial_label``) costs the negative log of the probability summed over the classes it admits
    (the marginal likelihood), weighted as the three terms of a full label together.  ``labels.OUTSIDE`` (a
    spectrum outside the label space) costs the cross-entropy to the flat distribution over the classes."""
    import torch

    targets = torch.from_numpy(soft_targets(age_sigma, smoothing))
    broad_index = [labels.BROAD_TYPES.index(labels.BROAD_TYPE[t]) for t in labels.SN_TYPES]
    broad_mask = torch.full((len(labels.BROAD_TYPES), labels.N_TYPES), float("-inf"))
    for k, b in enumerate(broad_index):
        broad_mask[b, k] = 0.0
    broad_of = torch.tensor(broad_index)

    allowed = torch.where(torch.from_numpy(labels.allowed_classes()), 0.0, float("-inf"))

    def full_loss(logp, y):  # summed over the rows
        class_loss = -(targets[y] * logp).sum(dim=1).sum()
        type_logp = torch.logsumexp(logp.view(-1, labels.N_TYPES, labels.N_AGE_BINS), dim=2)
        true_type = y // labels.N_AGE_BINS
        type_loss = torch.nn.functional.nll_loss(type_logp, true_type, reduction="sum")
        broad_logp = torch.logsumexp(type_logp[:, None, :] + broad_mask[None], dim=2)
        broad_loss = torch.nn.functional.nll_loss(broad_logp, broad_of[true_type], reduction="sum")
        return class_loss + type_weight * type_loss + broad_weight * broad_loss

    def loss(logits, y):
        logp = torch.log_softmax(logits, dim=1)
        full = y < labels.N_CLASSES
        if bool(full.all()):
            return full_loss(logp, y) / len(y)
        outside = y == labels.OUTSIDE
        partial = ~full & ~outside
        marginal = -torch.logsumexp(logp[partial] + allowed[y[partial]], dim=1).sum()
        flat = -logp[outside].mean(dim=1).sum()
        return (full_loss(logp[full], y[full]) + (1 + type_weight + broad_weight) * marginal + flat) / len(y)

    return loss


#: The redshift model's loss settings: cross-entropy towards a Gaussian over the redshift bins.
REDSHIFT_LOSS: dict[str, Any] = {"kind": "gaussian-bins", "target_sigma": labels.REDSHIFT_TARGET_SIGMA}


def redshift_loss(*, target_sigma: float = REDSHIFT_LOSS["target_sigma"]):
    """Cross-entropy of the redshift bins against a Gaussian of width ``target_sigma`` around the true z
    (a float per example): being one bin off costs little, being 0.1 off costs a lot."""
    import torch

    bins = torch.from_numpy(labels.REDSHIFT_BINS.astype(np.float32))

    def loss(logits, z):
        t = torch.exp(-0.5 * ((bins[None, :] - z[:, None].float()) / target_sigma) ** 2)
        t = t / t.sum(dim=1, keepdim=True)
        return -(t * torch.log_softmax(logits, dim=1)).sum(dim=1).mean()

    return loss


#: The transformer's loss settings: cross-entropy over its five classes towards the class each label code
#: admits (``labels.transformer_allowed``), with a little label smoothing.
TRANSFORMER_LOSS: dict[str, Any] = {"kind": "type-only cross-entropy", "smoothing": 0.02}


def transformer_loss(*, smoothing: float = TRANSFORMER_LOSS["smoothing"]):
    """Cross-entropy of a type-only model's logits [n, 5] against label codes (full classes, partial labels,
    ``labels.OUTSIDE`` = SLSNe-I): every code admits one of the five classes."""
    import torch

    target_of = torch.from_numpy(labels.transformer_allowed().argmax(axis=1))

    def loss(logits, y):
        return torch.nn.functional.cross_entropy(logits, target_of[y], label_smoothing=smoothing)

    return loss


def transformer_scores(logits, y) -> dict:
    """Accuracy of a type-only model's most probable class."""
    import torch

    target = torch.from_numpy(labels.transformer_allowed().argmax(axis=1))[y]
    return {"class_acc": float((logits.argmax(1) == target).float().mean())}


def class_scores(logits, y) -> dict:
    """Accuracy of the most probable class and of the most probable subtype (probability summed over ages)."""
    import torch

    by_type = torch.softmax(logits, 1).view(-1, labels.N_TYPES, labels.N_AGE_BINS).sum(2)
    return {"class_acc": float((logits.argmax(1) == y).float().mean()),
            "subtype_acc": float((by_type.argmax(1) == y // labels.N_AGE_BINS).float().mean())}


def redshift_scores(logits, z) -> dict:
    """Share of examples whose most probable redshift bin is within 0.02 of the true z."""
    zhat = labels.REDSHIFT_BINS[logits.argmax(1).numpy()]
    return {"within_0.02": float(np.mean(np.abs(zhat - z.numpy()) <= 0.02))}


#: The peak learning rate of the one-cycle schedule when none is given.
LEARNING_RATE = 2e-3


def train_model(make_epoch, X_val, y_val, *, arch, seed: int, epochs: int, time_budget_s: float, log=print,
                batch_size: int = 128, lr: float | None = None, threads: int = 2, dropout: float = 0.3, loss_fn=None,
                score_fn=class_scores, select: str = "best", init: dict[str, np.ndarray] | None = None):
    """Train on ``make_epoch(epoch) -> (X, y)`` (fresh augmented data each epoch); keep the weights with the
    best validation loss (``select="best"``) or those of the last epoch (``"last"``: when the validation
    examples are part of the training data they only monitor).  ``y`` is what ``loss_fn`` and ``score_fn`` take (class indices by default).
    ``init``: start from these weights (a model file's, same architecture) instead of a random initialisation:
    fine-tuning.  Returns (weights, history) with one history entry per epoch."""
    import torch

    if select not in ("best", "last"):
        raise ValueError(f"select must be 'best' or 'last', got {select!r}")
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    net = build_torch(arch, dropout)
    if init is not None:
        load_weights(net, init)
    lr = LEARNING_RATE if lr is None else lr
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    loss_fn = loss_fn or hierarchical_loss()
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
        total, seen = 0.0, 0
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
            seen += len(yb)
        net.eval()
        with torch.no_grad():
            out = torch.cat([net(Xv[s:s + 1024]) for s in range(0, len(yv), 1024)])
            vloss = float(loss_fn(out, yv))
            scores = score_fn(out, yv)
        entry = {"epoch": epoch + 1, "train_loss": round(total / seen, 4), "val_loss": round(vloss, 4),
                 **{f"val_{k}": round(v, 4) for k, v in scores.items()},
                 "data_s": round(t_data, 1), "wall_s": round(time.time() - t0, 1)}
        history.append(entry)
        log("epoch " + " ".join(f"{k}={v}" for k, v in entry.items()))
        if vloss < best_loss or select == "last":
            best_loss, best = vloss, export_weights(net)
        if time.time() - t0 > time_budget_s:
            log(f"time budget of {time_budget_s:.0f} s reached after {epoch + 1} epochs")
            break
    return best, history
