"""Label fidelity: does a classifier trained on real images recognise the synthetic images' labels?

Any classifier works that has ``class_names: list[str]`` and
``predict_proba(images: list[PIL.Image]) -> np.ndarray (N, C)`` (columns in ``class_names`` order).
Without one, :class:`SimpleCNNClassifier` is trained on the spot on the real set.
"""

from __future__ import annotations

import time
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn as nn
from PIL import Image


class _SmallCNN(nn.Module):
    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = channels
        for cout in (16, 32, 64, 64):
            layers += [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            cin = cout
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(cin, num_classes)

    def forward(self, x):
        return self.head(self.features(x).mean(dim=(2, 3)))


class SimpleCNNClassifier:
    """A small 4-block CNN (about 60k parameters) trained from scratch: quick on a CPU, a few minutes at most."""

    def __init__(self, class_names: Sequence[str], image_size: int = 64, channels: int = 1, epochs: int = 8,
                 batch_size: int = 64, learning_rate: float = 2e-3, seed: int = 0, device: str | None = None,
                 min_steps: int = 150) -> None:
        self.class_names = list(class_names)
        self.image_size = image_size
        self.channels = channels
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.seed = seed
        self.min_steps = min_steps
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        torch.manual_seed(seed)
        self.model = _SmallCNN(channels, len(self.class_names)).to(self.device)

    def _tensor(self, images: Sequence[Image.Image]) -> torch.Tensor:
        from ..data import image_transform

        tf = image_transform(self.image_size, self.channels, normalize=True)
        return torch.stack([tf(im) for im in images])

    def fit(self, ds, progress: bool = False) -> "SimpleCNNClassifier":
        """Train on a dataset with ``image``/``label`` columns; class weights balance skewed classes."""
        from tqdm.auto import tqdm

        x = self._tensor(ds["image"])
        y = torch.as_tensor(np.asarray(ds["label"], dtype=np.int64))
        counts = torch.bincount(y, minlength=len(self.class_names)).float().clamp_min(1)
        weight = (counts.sum() / counts / len(counts)).to(self.device)
        g = torch.Generator().manual_seed(self.seed)
        opt = torch.optim.AdamW(self.model.parameters(), lr=self.learning_rate, weight_decay=1e-4)
        per_epoch = (len(x) + self.batch_size - 1) // self.batch_size
        epochs = max(self.epochs, -(-self.min_steps // max(per_epoch, 1)))  # small sets: enough optimiser steps
        steps = epochs * per_epoch
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=self.learning_rate, total_steps=max(steps, 1))
        loss_fn = nn.CrossEntropyLoss(weight=weight)
        self.model.train()
        bar = tqdm(total=steps, desc="label-fidelity classifier", disable=not progress, unit="step")
        for _ in range(epochs):
            perm = torch.randperm(len(x), generator=g)
            for start in range(0, len(x), self.batch_size):
                idx = perm[start:start + self.batch_size]
                xb = x[idx].to(self.device)
                if torch.rand(1, generator=g).item() < 0.5:  # mild augmentation: small shifts
                    xb = torch.roll(xb, shifts=(int(torch.randint(-3, 4, (1,), generator=g)), int(torch.randint(-3, 4, (1,), generator=g))), dims=(2, 3))
                loss = loss_fn(self.model(xb), y[idx].to(self.device))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                bar.update(1)
        bar.close()
        self.model.eval()
        return self

    @torch.no_grad()
    def predict_proba(self, images: list[Image.Image]) -> np.ndarray:
        self.model.eval()
        out = []
        for start in range(0, len(images), 256):
            xb = self._tensor(images[start:start + 256]).to(self.device)
            out.append(torch.softmax(self.model(xb), dim=1).cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, len(self.class_names)), dtype=np.float32)


def scores(y_true: np.ndarray, y_pred: np.ndarray, class_names: Sequence[str]) -> dict[str, Any]:
    """Accuracy, macro F1, per-class precision / recall / F1 / support and the confusion matrix."""
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

    labels = list(range(len(class_names)))
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
        "per_class": {n: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
                      for i, n in enumerate(class_names)},
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }


def _predict(classifier, ds, batch_size: int = 256) -> np.ndarray:
    preds = []
    for batch in ds.select_columns(["image"]).iter(batch_size=batch_size):
        proba = np.asarray(classifier.predict_proba(list(batch["image"])))
        if proba.ndim != 2 or proba.shape[1] != len(classifier.class_names):
            raise ValueError(f"predict_proba returned shape {proba.shape}; expected (N, {len(classifier.class_names)})")
        preds.append(proba.argmax(axis=1))
    return np.concatenate(preds)


def label_fidelity(synthetic, classifier: Any = None, train=None, real_test=None, validation_fraction: float = 0.15,
                   epochs: int = 8, image_size: int = 64, seed: int = 0, min_steps: int = 150,
                   progress: bool = False) -> dict[str, Any]:
    """Score the synthetic set's labels with a classifier trained on real data.

    ``classifier``: any object with ``class_names`` and ``predict_proba``; when None a
    :class:`SimpleCNNClassifier` is trained on ``train`` (a real set), holding out
    ``validation_fraction`` of it so its accuracy on real images is reported next to the synthetic
    scores (label fidelity means little if the classifier is poor on real images). ``real_test``,
    when given, is scored the same way. Synthetic classes are matched to the classifier's by name.
    """
    from ..data import is_grayscale, load_dataset
    from ..classes import match_class_names, stratified_indices

    synthetic = load_dataset(synthetic)
    out: dict[str, Any] = {}
    started = time.time()
    if classifier is None:
        if train is None:
            raise ValueError("label fidelity needs a classifier or a real training set (train=...) to train one")
        train = load_dataset(train)
        labels = np.asarray(train["label"])
        n_val = int(round(len(train) * validation_fraction)) if real_test is None else 0
        val_idx = stratified_indices(labels, n_val, seed=seed) if n_val else np.array([], dtype=np.int64)
        fit_idx = np.setdiff1d(np.arange(len(train)), val_idx)
        channels = 1 if is_grayscale(train) else 3
        classifier = SimpleCNNClassifier(train.features["label"].names, image_size=image_size, channels=channels,
                                         epochs=epochs, seed=seed, min_steps=min_steps)
        classifier.fit(train.select(fit_idx.tolist()), progress=progress)
        out["classifier"] = f"SimpleCNN trained on the spot ({len(fit_idx)} real images, {epochs} epochs, {image_size} px)"
        if n_val:
            val = train.select(val_idx.tolist())
            out["real_validation"] = scores(np.asarray(val["label"]), _predict(classifier, val), classifier.class_names)
        out["train_seconds"] = round(time.time() - started, 1)
    else:
        if not hasattr(classifier, "class_names") or not hasattr(classifier, "predict_proba"):
            raise TypeError("classifier must have class_names and predict_proba(images) -> (N, C) probabilities")
        out["classifier"] = type(classifier).__name__
    names = list(classifier.class_names)
    if real_test is not None:
        real_test = load_dataset(real_test)
        m = np.asarray(match_class_names(names, real_test.features["label"].names, "real test"))
        out["real_test"] = scores(m[np.asarray(real_test["label"])], _predict(classifier, real_test), names)
    mapping = np.asarray(match_class_names(names, synthetic.features["label"].names, "synthetic"))
    y_true = mapping[np.asarray(synthetic["label"], dtype=np.int64)]
    out["synthetic"] = scores(y_true, _predict(classifier, synthetic), names)
    out["class_names"] = names
    return out

