"""Blend: EWMA-t as a torch graph equals the scipy baseline; the pool's weights follow the better member."""

import numpy as np
import torch
from scipy import stats

from training.models.base import Buckets, default_edges_bps
from training.models.blend import fit_blend_weights
from training.models.ewma_t import EwmaT, EwmaTConfig

BUCKETS = Buckets(default_edges_bps(41, -20, 20))


def _windows(n, seed, lookback=16):
    rng = np.random.default_rng(seed)
    vol = rng.uniform(1.0, 6.0, size=n)  # bps per step, a regime per window
    r = rng.standard_t(4, size=(n, lookback + 4)) * vol[:, None] / np.sqrt(2.0)
    X = (r[:, :lookback, None] / 1e4).astype(np.float32)  # one feature: the one-step log return
    y = np.stack([BUCKETS.index(r[:, lookback]), BUCKETS.index(r[:, lookback:].sum(axis=1))], axis=1)
    return X, y, vol


def test_ewma_t_graph_equals_the_scipy_baseline():
    X, y, _ = _windows(3000, 0)
    model = EwmaT(BUCKETS, EwmaTConfig(halflife=4.0)).fit(X[:2000], y[:2000])
    with torch.no_grad():
        graph = model.torch_graph(X.shape[1])(torch.from_numpy(X[2000:])).numpy()
    np.testing.assert_allclose(graph, model.predict_proba(X[2000:]), atol=5e-4)  # the t CDF is a table in the graph
    np.testing.assert_allclose(graph.sum(-1), 1.0, atol=1e-5)


def test_blend_weights_follow_the_better_member():
    X, y, vol = _windows(4000, 1)
    scale = np.stack([vol, vol * np.sqrt(4.0)], axis=1)[..., None]  # the truth's scale per horizon

    def forecast(width):
        return BUCKETS.from_cdf(lambda e: stats.t.cdf(e / (width * scale / np.sqrt(2.0)), 4))

    truth, wide = forecast(1.0), forecast(3.0)
    assert np.all(fit_blend_weights(truth, wide, y) > 0.9)
    assert np.all(fit_blend_weights(wide, truth, y) < 0.1)
    w = fit_blend_weights(forecast(0.6), forecast(1.6), y)  # too sharp and too wide: a pool beats both
    assert np.all((w > 0.1) & (w < 0.9))


def test_ewma_t_graph_exports_within_the_parity_tolerance():
    """The interpolation runs in float64: float32 grid positions near 8000 broke the 1e-5 ONNX parity."""
    import onnxruntime as ort

    from training.onnx_export import GOLDEN_TOLERANCE, torch_to_onnx

    X, y, _ = _windows(1500, 2)
    graph = EwmaT(BUCKETS, EwmaTConfig(halflife=4.0)).fit(X[:1000], y[:1000]).torch_graph(X.shape[1])
    proto = torch_to_onnx(graph, torch.from_numpy(X[:2]))
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    got = sess.run(["probs"], {"features": X[1000:]})[0]
    with torch.no_grad():
        want = graph(torch.from_numpy(X[1000:])).numpy()
    assert np.abs(got - want).max() <= GOLDEN_TOLERANCE


def test_ewma_t_graph_keeps_both_tails():
    """Upper-tail buckets are as precise as lower-tail ones: in float32 a CDF within 6e-8 of 1 is 1.0,
    which had the graph give every far up-move 1e-12 (an up-jump cost ~20 nats more than a down-jump)."""
    X, y, _ = _windows(3000, 2)
    model = EwmaT(BUCKETS, EwmaTConfig(halflife=4.0)).fit(X[:2000], y[:2000])
    model.nu_ = np.array([50.0, 50.0])  # near-normal tails (as fitted at most horizons of the demo)
    calm = X[2000:2200] * np.geomspace(0.01, 1.0, 200, dtype=np.float32)[:, None, None]  # calm to normal
    calm = np.ascontiguousarray(calm)
    with torch.no_grad():
        graph = model.torch_graph(X.shape[1])(torch.from_numpy(calm)).numpy().astype(np.float64)
    ref = model.predict_proba(calm)
    far = ref > 1e-10  # the graph floors at 1e-12
    assert (far & (ref < 1e-7))[..., BUCKETS.k // 2 :].any()  # upper-tail mass below float32's step near 1
    np.testing.assert_allclose(np.log(graph[far]), np.log(ref[far]), atol=0.02)
