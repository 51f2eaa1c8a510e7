"""PriceTransformer: interface, normalisation in the graph, learns the synthetic signal, exports in one ensemble graph."""

import numpy as np
import pytest
import torch

from training.metrics import log_score_per_sample
from training.models.base import Buckets, Exportable, default_edges_bps
from training.models.climatology import Climatology
from training.models.ensemble import Ensemble, EnsembleConfig
from training.models.transformer import PriceTransformer, TransformerConfig
from training.synthetic import SyntheticConfig, simulate

BUCKETS = Buckets(default_edges_bps(41, -20, 20))
TINY = TransformerConfig(
    d_model=16, n_heads=2, n_layers=1, d_ff=32, max_epochs=6, batch_size=128, warmup_steps=10, patience=2
)


@pytest.fixture(scope="module")
def trained():
    d = simulate(SyntheticConfig(n_steps=3000, lookback=12, horizons=(1, 4)), BUCKETS)
    n = int(len(d.y) * 0.7)
    model = PriceTransformer(BUCKETS, TINY).fit(d.X[:n], d.y[:n])
    return d, n, model


def test_transformer_learns_the_signal(trained):
    d, n, model = trained
    te = slice(n + 8, None)
    p = model.predict_proba(d.X[te])
    assert p.shape == (len(d.y[te]), 2, BUCKETS.k)
    np.testing.assert_allclose(p.sum(-1), 1.0, atol=1e-6)
    clim = Climatology(BUCKETS).fit(d.X[:n], d.y[:n]).predict_proba(d.X[te])
    ls = log_score_per_sample(p[:, 0], d.y[te, 0]).mean()
    assert ls < log_score_per_sample(clim[:, 0], d.y[te, 0]).mean()  # tiny net, 6 epochs: a small but real gain
    assert 1 <= model.epochs_ <= TINY.max_epochs and np.isfinite(model.best_val_nll_)


def test_normalisation_lives_in_the_module(trained):
    d, n, model = trained
    net = model.to_torch_module()
    assert isinstance(model, Exportable) and not net.training
    flat = d.X[: n - int(n * 0.15) - TINY.val_gap].reshape(-1, 3)  # what fit saw (the latest windows validate)
    np.testing.assert_allclose(net.mean.numpy(), flat.mean(0), rtol=1e-3, atol=1e-7)
    with torch.no_grad():
        out = net(torch.from_numpy(d.X[:4])).numpy()
    np.testing.assert_allclose(out, model.predict_proba(d.X[:4]), atol=1e-6)


def test_ensemble_exports_as_one_graph(trained):
    d, n, model = trained
    clim = Climatology(BUCKETS).fit(d.X[:n], d.y[:n])
    ens = Ensemble([clim, model], BUCKETS, EnsembleConfig(block=100, refit_members=False)).update(d.X[n:], d.y[n:])
    graph = ens.to_torch_module()
    assert torch.allclose(graph.weights, torch.tensor(ens.weights_, dtype=torch.float32))
    out = graph(torch.from_numpy(d.X[:5])).detach().numpy()
    np.testing.assert_allclose(out, ens.predict_proba(d.X[:5]), atol=1e-5)


@pytest.mark.parametrize("head", ["vol_mixture", "softmax"])
def test_net_exports_to_onnx_with_a_dynamic_batch(head):
    """The eval graph (normalisation, patches, [CLS], explicit attention, heads) goes through the dynamo exporter."""
    import dataclasses

    import onnxruntime as ort

    from training.models.transformer import PriceTransformerNet
    from training.onnx_export import torch_to_onnx

    torch.manual_seed(0)
    cfg = dataclasses.replace(TINY, head=head, patch=5)  # 12 steps: the oldest 2 left out, 2 tokens
    net = PriceTransformerNet(cfg, lookback=12, n_features=3, n_horizons=2, buckets=BUCKETS).eval()
    torch.nn.init.normal_(net.heads.out.weight if head == "vol_mixture" else net.heads.weight, std=0.5)
    net.mean.copy_(torch.tensor([0.0, 1.0, 2.0]))
    net.std.copy_(torch.tensor([1e-4, 2.0, 3.0]))
    x = torch.randn(7, 12, 3)
    proto = torch_to_onnx(net, x[:2])
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    for batch in (1, 7):
        got = sess.run(["probs"], {"features": x[:batch].numpy()})[0]
        with torch.no_grad():
            np.testing.assert_allclose(got, net(x[:batch]).numpy(), atol=1e-5)


def test_vol_mixture_head_scales_with_the_window_volatility():
    """An untrained vol-mixture head is an EWMA-vol forecaster: twice the returns, twice the spread."""
    import dataclasses

    from training.models.transformer import PriceTransformerNet

    torch.manual_seed(0)
    cfg = dataclasses.replace(TINY, vol_halflife=2.0)  # the start value (unconditional variance) weighs ~2%
    net = PriceTransformerNet(cfg, lookback=12, n_features=3, n_horizons=2, buckets=BUCKETS).eval()
    rng = np.random.default_rng(0)
    x = np.zeros((2, 12, 3), np.float32)
    x[0, :, 0] = rng.normal(0, 2e-4, 12)  # one-step log returns (x 1e4 = bps)
    x[1] = x[0] * 2
    with torch.no_grad():
        p = net(torch.from_numpy(x)).numpy()
    mids = BUCKETS.mids_bps
    sd = np.sqrt(p[:, 0] @ mids**2 - (p[:, 0] @ mids) ** 2)
    assert 1.6 < sd[1] / sd[0] < 2.2  # x2 up to the clipping of the tails into the end buckets


def test_linear_skip_reads_a_linear_signal_from_few_windows():
    """The last step's features move each horizon's location through a linear map beside the encoder."""
    rng = np.random.default_rng(5)
    n, lookback = 3000, 8
    ret = rng.standard_normal((n, lookback)) * 2.0  # one-step returns, bps
    signal = rng.standard_normal(n)
    X = np.stack([ret, np.repeat(signal[:, None], lookback, axis=1)], axis=2).astype(np.float32)
    y = BUCKETS.index(4.0 * signal + rng.standard_normal(n) * 3.0)[:, None]
    cfg = TransformerConfig(
        d_model=8, n_heads=2, n_layers=1, d_ff=16, max_epochs=4, batch_size=128, warmup_steps=10, patience=2,
        ret_feature=0, ret_unit_bps=1.0, lr=1e-2,
    )  # fmt: skip
    model = PriceTransformer(BUCKETS, cfg).fit(X[:2400], y[:2400])
    assert model.net_ is not None and model.net_.skip is not None
    assert float(model.net_.skip.weight.abs().max()) > 0  # the skip was trained (it starts at zero)
    mean = model.predict_proba(X[2400:])[:, 0] @ BUCKETS.mids_bps
    assert np.corrcoef(mean, signal[2400:])[0, 1] > 0.8
    off = PriceTransformer(BUCKETS, TransformerConfig(linear_skip=False, ret_feature=0, max_epochs=1))
    assert off.fit(X[:300], y[:300]).net_.skip is None  # type: ignore[union-attr]


def test_lattice_offsets_learn_a_price_comb():
    """Returns on a tick lattice (every 3rd bucket, as a 1-cent tick on a ~$33 price): the offsets fitted
    after training give the gaps of the comb little mass, where a smooth head spreads it; offsets that
    do not improve the validation log score enough are left out."""
    rng = np.random.default_rng(9)
    n, lookback = 3000, 8
    vol = np.repeat(rng.uniform(2.0, 6.0, size=n // 100), 100)  # regimes the EWMA of the returns tracks
    ret = rng.standard_normal((n, lookback)) * vol[:, None]
    X = ret[:, :, None].astype(np.float32)
    y = BUCKETS.index(3.0 * np.round(rng.standard_normal(n) * vol / 3.0))[:, None]
    cfg = TransformerConfig(
        d_model=8, n_heads=2, n_layers=1, d_ff=16, max_epochs=3, batch_size=128, warmup_steps=10, patience=2,
        ret_feature=0, ret_unit_bps=1.0,
    )  # fmt: skip
    scores = {}
    for on in (True, False):
        model = PriceTransformer(BUCKETS, TransformerConfig(**{**cfg.__dict__, "lattice_offsets": on}))
        p = model.fit(X[:2400], y[:2400]).predict_proba(X[2400:])[:, 0]
        scores[on] = log_score_per_sample(p, y[2400:, 0]).mean()
        off_comb = np.round(BUCKETS.mids_bps) % 3 != 0
        if on:
            assert model.lattice_gain_ > 0.5  # kept: they improved the validation log score
            assert p[:, off_comb].sum(-1).mean() < 0.05  # the gaps between ticks hold almost nothing
    assert scores[True] < scores[False] - 0.5  # nats: a smooth head pays for every gap
    strict = PriceTransformer(BUCKETS, TransformerConfig(**{**cfg.__dict__, "lattice_min_gain": 100.0}))
    strict.fit(X[:600], y[:600])  # offsets that do not gain the required amount are left out
    assert strict.net_ is not None and float(strict.net_.lattice.abs().max()) == 0.0
