"""PriceTransformer (seed SPECS): a small encoder over the feature window, one distribution head per horizon.

    features (B, L, F) -> normalise with stored mean/std (inside the graph)
      -> patches of ``patch`` steps (B, L / patch, patch F) -> Linear(patch F, d)
      -> prepend [CLS] -> + learned positional embedding (L / patch + 1, d)
      -> N pre-norm encoder layers (multi-head self-attention + GELU MLP)
      -> LayerNorm([CLS]) -> head -> probs (B, H, K)

Heads: ``vol_mixture`` (default, ``training.models.heads``): per horizon a mixture of logistics whose
scale is the window's EWMA volatility (computed in the graph from the raw returns) times a learned
factor, bucketed by its CDF, so an untrained net is already a volatility forecaster and the encoder
learns location, shape and regime; ``softmax``: K free logits per horizon, which on a few days of
ticks could not even match the EWMA-t baseline (it must learn the width of every regime bucket by
bucket). Trained with Lightning on the log score (hard labels; Gaussian soft labels and EMD are
options, training.losses), AdamW with linear warmup then cosine decay, gradient clipping, early
stopping on the validation log score, best-checkpoint restore, mixed precision on a GPU only. The
attention is written out with matmul and softmax (no fused kernels) so the eval graph exports to
ONNX as is. Defaults train on 2 CPU cores in seconds to minutes and score one window well under a
millisecond.
"""

from __future__ import annotations

import logging
import math
import tempfile
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from training.losses import mixed_loss
from training.models.base import Buckets, check_xy
from training.models.heads import VolMixtureHead


@dataclass(frozen=True)
class TransformerConfig:
    """Architecture and training schedule of the PriceTransformer."""

    d_model: int = 32
    n_heads: int = 4
    n_layers: int = 2
    d_ff: int = 64
    dropout: float = 0.1
    soft_label_sigma: float = 0.0  # buckets; 0 = hard labels (the log score the gates judge)
    emd_weight: float = 0.0
    lr: float = 1e-3  # at 3e-3 the encoder overfit the demo's 3 training days within two epochs
    weight_decay: float = 1e-2
    warmup_steps: int = 100
    batch_size: int = 256
    max_epochs: int = 30
    patience: int = 10
    grad_clip: float = 1.0
    val_fraction: float = 0.15  # of the training windows (the latest) when no validation set is given
    val_gap: int = 32  # windows dropped between the two (their labels overlap the validation period)
    checkpoint_dir: str | None = None  # None: a temporary directory
    num_threads: int | None = None  # torch intra-op threads while fitting (None: leave torch's setting)
    seed: int = 0
    patch: int = 4  # consecutive steps per token (PatchTST-style): L / patch tokens, attention ~patch^2 cheaper
    head: str = "vol_mixture"  # "vol_mixture" (training.models.heads) or "softmax" (K free logits per horizon)
    components: int = 3  # logistic components per horizon (vol_mixture)
    ret_feature: int = 0  # index of the one-step log return (vol_mixture's EWMA volatility)
    ret_unit_bps: float = 1e4  # the return feature times this is bps
    vol_halflife: float = 20.0  # steps
    # A linear map from the last step's normalised features to each horizon's location (vol_mixture):
    # on a few days of windows the encoder overfits within two epochs, while a linear read of the
    # order flow holds out of sample (the demo market: ridge OOS correlation 0.27 with 60 s returns).
    linear_skip: bool = True
    # A log-offset per horizon and bucket fitted after training: log(training frequency / the trained net's
    # mean forecast). Prices move on a tick lattice (BAC: 1 cent is ~6.7 bps, so mid returns land on a comb
    # of buckets and skip the ones between), which a smooth head spreads mass over and climatology does
    # not. Kept only where they improve the validation log score by ``lattice_min_gain`` nats/sample (mean
    # over horizons). Offsets trained with the net from the start cost the demo's simulated market (a fine
    # lattice) 0.02 nats and its calibration at 60 s.
    lattice_offsets: bool = True
    lattice_min_gain: float = 0.01


class EncoderLayer(nn.Module):
    """Pre-norm transformer block with explicit attention (export-friendly)."""

    def __init__(self, d: int, heads: int, d_ff: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.out = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.mlp = nn.Sequential(nn.Linear(d, d_ff), nn.GELU(), nn.Dropout(dropout), nn.Linear(d_ff, d))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, D = x.shape
        q, k, v = self.qkv(self.norm1(x)).reshape(B, T, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)
        att = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(D // self.heads), dim=-1)  # (B, h, T, T)
        x = x + self.drop(self.out((att @ v).transpose(1, 2).reshape(B, T, D)))
        return x + self.drop(self.mlp(self.norm2(x)))


class PriceTransformerNet(nn.Module):
    """(B, L, F) float32 -> (B, H, K) probabilities, normalisation included."""

    mean: torch.Tensor  # buffers (register_buffer), declared for the type checker
    std: torch.Tensor

    def __init__(
        self, cfg: TransformerConfig, lookback: int, n_features: int, n_horizons: int, buckets: Buckets
    ) -> None:
        super().__init__()
        k = buckets.k
        self.register_buffer("mean", torch.zeros(n_features))
        self.register_buffer("std", torch.ones(n_features))
        self.patch = max(1, min(cfg.patch, lookback))
        self.tokens = lookback // self.patch  # the oldest lookback % patch steps are left out
        self.proj = nn.Linear(n_features * self.patch, cfg.d_model)
        self.cls = nn.Parameter(torch.zeros(1, 1, cfg.d_model))
        self.pos = nn.Parameter(torch.randn(1, self.tokens + 1, cfg.d_model) * 0.02)
        self.layers = nn.ModuleList(
            EncoderLayer(cfg.d_model, cfg.n_heads, cfg.d_ff, cfg.dropout) for _ in range(cfg.n_layers)
        )
        self.norm = nn.LayerNorm(cfg.d_model)
        self.heads: nn.Module
        if cfg.head == "vol_mixture":
            self.heads = VolMixtureHead(
                cfg.d_model,
                lookback,
                n_horizons,
                buckets.inner_edges_bps,
                components=cfg.components,
                ret_feature=cfg.ret_feature,
                ret_unit_bps=cfg.ret_unit_bps,
                halflife=cfg.vol_halflife,
            )
        elif cfg.head == "softmax":
            self.heads = nn.Linear(cfg.d_model, n_horizons * k)  # H heads of K logits, one matmul
        else:
            raise ValueError(f"unknown head {cfg.head!r} (vol_mixture, softmax)")
        self.h, self.k = n_horizons, k
        self.skip: nn.Linear | None = None
        if cfg.linear_skip and cfg.head == "vol_mixture":
            self.skip = nn.Linear(n_features, n_horizons)
            nn.init.zeros_(self.skip.weight)  # starts as the encoder alone
            nn.init.zeros_(self.skip.bias)
        # (H, K) added to the head's log probabilities; zeros (no effect) unless fit_lattice keeps them
        self.lattice = nn.Parameter(torch.zeros(n_horizons, k), requires_grad=False)

    def fit_lattice(self, X: np.ndarray, y: np.ndarray, X_val: np.ndarray, y_val: np.ndarray, min_gain: float) -> float:
        """Offsets = log(bucket frequency of ``y``) - log(the net's mean forecast over ``X``), in [-12, 6].

        The product with the head then matches the training marginal, so buckets no label reaches (the
        gaps of a price lattice) get little mass. They are kept only when they improve the log score on
        the validation windows by ``min_gain`` nats; otherwise they stay zero. Returns that gain.
        """
        was_training = self.training
        self.eval()

        def sample(xs: np.ndarray) -> tuple[torch.Tensor, np.ndarray]:
            take = np.linspace(0, len(xs) - 1, min(len(xs), 8192)).astype(np.int64)
            with torch.no_grad():
                return torch.log_softmax(self.logits(torch.from_numpy(np.ascontiguousarray(xs[take]))), -1), take

        def nll(logp: torch.Tensor, ys: np.ndarray) -> float:
            return float(-logp.gather(-1, torch.from_numpy(ys)[..., None]).mean())

        logp_fit, _ = sample(X)
        mean_p = logp_fit.exp().mean(0).double().numpy()
        counts = np.stack([np.bincount(y[:, h], minlength=self.k) for h in range(self.h)]).astype(np.float64)
        freq = (counts + 0.5) / (len(y) + 0.5 * self.k)  # Jeffreys: a bucket never seen is not impossible
        offsets = torch.tensor(np.clip(np.log(freq) - np.log(mean_p.clip(1e-12)), -12.0, 6.0), dtype=torch.float32)
        logp_val, take = sample(X_val)
        gain = nll(logp_val, y_val[take]) - nll(torch.log_softmax(logp_val + offsets, -1), y_val[take])
        if gain >= min_gain:
            self.lattice.data.copy_(offsets)
        self.train(was_training)
        return gain

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        x = ((features - self.mean) / self.std).clamp(-10.0, 10.0)  # (B, L, F)
        shift = self.skip(x[:, -1]) if self.skip is not None else None  # (B, H) from the last step
        x = x[:, x.shape[1] - self.tokens * self.patch :].reshape(x.shape[0], self.tokens, -1)  # (B, T, patch F)
        x = self.proj(x)  # (B, T, d)
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], dim=1) + self.pos  # (B, T + 1, d)
        for layer in self.layers:
            x = layer(x)
        if isinstance(self.heads, VolMixtureHead):
            return self.heads(self.norm(x[:, 0]), features, shift) + self.lattice  # (B, H, K), unnormalised
        return self.heads(self.norm(x[:, 0])).reshape(-1, self.h, self.k) + self.lattice  # (B, H, K)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.logits(features), dim=-1)


def _lightning_module(net: PriceTransformerNet, cfg: TransformerConfig, total_steps: int):
    import lightning as L

    class Lit(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def training_step(self, batch, _):
            x, y = batch
            loss = mixed_loss(self.net.logits(x), y, sigma=cfg.soft_label_sigma, emd_weight=cfg.emd_weight)
            self.log("train_loss", loss, prog_bar=False)
            return loss

        def validation_step(self, batch, _):
            x, y = batch
            nll = nn.functional.cross_entropy(self.net.logits(x).float().reshape(-1, net.k), y.reshape(-1))
            self.log("val_nll", nll, prog_bar=False)

        def configure_optimizers(self):
            opt = torch.optim.AdamW(self.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
            warm = max(1, cfg.warmup_steps)

            def schedule(step: int) -> float:
                if step < warm:
                    return (step + 1) / warm
                return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(1, total_steps - warm))))

            sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    return Lit()


class PriceTransformer:
    """DistributionModel wrapper: fits the net with Lightning, predicts and exports it."""

    name = "transformer"

    def __init__(self, buckets: Buckets | None = None, cfg: TransformerConfig | None = None) -> None:
        self.buckets = buckets or Buckets.default()
        self.cfg = cfg or TransformerConfig()
        self.net_: PriceTransformerNet | None = None
        self.epochs_: int = 0
        self.best_val_nll_: float = float("nan")
        self.lattice_gain_: float = float("nan")  # validation gain the lattice offsets gave (nats); NaN if not tried

    def fit(self, X, y, *, X_val=None, y_val=None) -> PriceTransformer:
        """Train on windows (N, L, F) and labels (N, H); early-stop on the validation log score."""
        import lightning as L
        from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

        X, y = check_xy(X, y, self.buckets.k)
        if X_val is None:
            n_val = max(1, int(len(X) * self.cfg.val_fraction))
            cut = len(X) - n_val
            X, y, X_val, y_val = X[: cut - self.cfg.val_gap], y[: cut - self.cfg.val_gap], X[cut:], y[cut:]
        X_val, y_val = check_xy(X_val, y_val, self.buckets.k)
        torch.manual_seed(self.cfg.seed)
        net = PriceTransformerNet(self.cfg, X.shape[1], X.shape[2], y.shape[1], self.buckets)
        if isinstance(net.heads, VolMixtureHead):
            ret = X[:, :, self.cfg.ret_feature].astype(np.float64) * self.cfg.ret_unit_bps
            net.heads.set_scale(ret, self.buckets.mids_bps[y])
        flat = X.reshape(-1, X.shape[2]).astype(np.float64)
        std = flat.std(axis=0)
        net.mean.copy_(torch.tensor(flat.mean(axis=0), dtype=torch.float32))
        net.std.copy_(torch.tensor(np.where(std > 1e-12, std, 1.0), dtype=torch.float32))

        gen = torch.Generator().manual_seed(self.cfg.seed)
        train_dl = torch.utils.data.DataLoader(
            torch.utils.data.TensorDataset(torch.from_numpy(X), torch.from_numpy(y)),
            batch_size=self.cfg.batch_size,
            shuffle=True,
            generator=gen,
        )
        val_dl = torch.utils.data.DataLoader(
            torch.utils.data.TensorDataset(torch.from_numpy(X_val), torch.from_numpy(y_val)),
            batch_size=4096,
        )
        lit = _lightning_module(net, self.cfg, self.cfg.max_epochs * len(train_dl))
        threads = torch.get_num_threads()
        if self.cfg.num_threads:
            torch.set_num_threads(self.cfg.num_threads)
        gpu = torch.cuda.is_available()
        with tempfile.TemporaryDirectory() as tmp:
            ckpt = ModelCheckpoint(dirpath=self.cfg.checkpoint_dir or tmp, monitor="val_nll", save_top_k=1)
            stop = EarlyStopping(monitor="val_nll", patience=self.cfg.patience)
            logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
            trainer = L.Trainer(
                max_epochs=self.cfg.max_epochs,
                accelerator="gpu" if gpu else "cpu",
                devices=1,
                precision="16-mixed" if gpu else "32-true",
                gradient_clip_val=self.cfg.grad_clip,
                callbacks=[ckpt, stop],
                logger=False,
                enable_progress_bar=False,
                enable_model_summary=False,
                deterministic=not gpu,
                default_root_dir=self.cfg.checkpoint_dir or tmp,
            )
            try:
                trainer.fit(lit, train_dl, val_dl)
            finally:
                torch.set_num_threads(threads)
            best = torch.load(ckpt.best_model_path, map_location="cpu", weights_only=False)["state_dict"]
            lit.load_state_dict(best)
            self.best_val_nll_ = float(ckpt.best_model_score) if ckpt.best_model_score is not None else float("nan")
        self.epochs_ = trainer.current_epoch
        net = net.cpu()
        if self.cfg.lattice_offsets:
            self.lattice_gain_ = net.fit_lattice(X, y, X_val, y_val, self.cfg.lattice_min_gain)
        self.net_ = net.eval()
        return self

    def predict_proba(self, X) -> np.ndarray:
        """Return (N, H, K) probabilities (float64 copy of the float32 net output)."""
        X, _ = check_xy(X, None)
        if self.net_ is None:
            raise RuntimeError("PriceTransformer.predict_proba before fit")
        out = []
        with torch.no_grad():
            for i in range(0, len(X), 8192):
                out.append(self.net_(torch.from_numpy(np.ascontiguousarray(X[i : i + 8192]))).numpy())
        p = np.concatenate(out).astype(np.float64)
        return p / p.sum(axis=-1, keepdims=True)

    def to_torch_module(self) -> nn.Module:
        """Return the trained net in eval mode: (B, L, F) -> (B, H, K)."""
        if self.net_ is None:
            raise RuntimeError("PriceTransformer.to_torch_module before fit")
        return self.net_.eval()
