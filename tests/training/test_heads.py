"""VolMixtureHead: a distribution over the buckets, as precise in the upper tail as in the lower one."""

import numpy as np
import torch

from training.models.base import Buckets, default_edges_bps
from training.models.heads import VolMixtureHead

BUCKETS = Buckets(default_edges_bps(101, -50, 50))


def test_untrained_head_is_symmetric_in_both_tails():
    """Zero location: the log probabilities mirror exactly, far tails included. Differencing the CDF in
    float32 zeroed every bucket whose CDF was within 6e-8 of 1, so the upper tail read 1e-12 (up to
    11 nats below its mirror bucket) while the lower tail kept its values."""
    torch.manual_seed(0)
    head = VolMixtureHead(8, 16, 2, BUCKETS.inner_edges_bps, components=3)
    z = torch.randn(64, 8)
    feats = torch.randn(64, 16, 1) * 1e-4  # one-step returns of ~1 bp: the end buckets lie ~50 scales out
    with torch.no_grad():
        logp = head(z, feats).double()
        ref = head.double()(z.double(), feats.double())
    np.testing.assert_allclose(logp.exp().sum(-1).numpy(), 1.0, atol=1e-6)
    live = ref > np.log(1e-11)
    assert live[..., -3:].any()  # the far upper buckets carry mass the float32 graph must keep
    np.testing.assert_allclose(logp[live].numpy(), ref[live].numpy(), atol=1e-3)
    np.testing.assert_allclose(logp[live].numpy(), logp.flip(-1)[live].numpy(), atol=1e-3)
