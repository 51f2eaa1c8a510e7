"""EMD and soft-label losses: metric properties, limits, and gradients that respect bucket order."""

import numpy as np
import pytest
import torch

from training.losses import emd, emd_loss, soft_cross_entropy, soft_labels


def _rand_dist(rng, n, k):
    p = rng.gamma(0.5, size=(n, k))
    return torch.tensor(p / p.sum(-1, keepdims=True))


def test_emd_is_a_metric_over_ordered_buckets():
    rng = np.random.default_rng(0)
    p, q, r = (_rand_dist(rng, 50, 21) for _ in range(3))
    assert torch.allclose(emd(p, p, 1), torch.zeros(50, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(emd(p, q, 1), emd(q, p, 1))
    assert torch.all(emd(p, r, 1) <= emd(p, q, 1) + emd(q, r, 1) + 1e-12)
    assert torch.all(emd(p, q, 2) >= 0)


@pytest.mark.parametrize(("i", "j"), [(0, 20), (5, 6), (10, 3)])
def test_emd_between_point_masses_is_their_distance(i, j):
    a, b = torch.zeros(21, dtype=torch.float64), torch.zeros(21, dtype=torch.float64)
    a[i], b[j] = 1.0, 1.0
    assert emd(a, b, 1).item() == pytest.approx(abs(i - j))
    assert emd(a, b, 2).item() == pytest.approx(abs(i - j))  # |i-j| CDF steps of height 1


def test_emd_of_a_near_miss_is_smaller_than_of_a_far_miss():
    y = torch.tensor([[10]])
    near, far = torch.full((1, 1, 21), -5.0), torch.full((1, 1, 21), -5.0)
    near[0, 0, 11], far[0, 0, 20] = 5.0, 5.0
    assert emd_loss(near, y) < emd_loss(far, y)
    # plain cross entropy cannot tell them apart
    assert soft_cross_entropy(near, y, 0.0).item() == pytest.approx(soft_cross_entropy(far, y, 0.0).item())
    assert soft_cross_entropy(near, y, 1.5) < soft_cross_entropy(far, y, 1.5)


def test_soft_labels_are_centred_normalised_and_reduce_to_one_hot():
    y = torch.tensor([[0, 10, 20]])
    q = soft_labels(y, 21, 2.0)
    assert torch.allclose(q.sum(-1), torch.ones(1, 3))
    assert q.argmax(-1).tolist() == [[0, 10, 20]]
    assert torch.allclose(q[0, 1], q[0, 1].flip(0))  # symmetric around the middle bucket
    assert torch.equal(soft_labels(y, 21, 0.0), torch.nn.functional.one_hot(y, 21).float())
    assert torch.allclose(soft_labels(y, 21, 1e-3), soft_labels(y, 21, 0.0), atol=1e-6)


def test_soft_cross_entropy_equals_torch_cross_entropy_for_hard_labels():
    logits = torch.randn(8, 3, 21, generator=torch.Generator().manual_seed(1))
    y = torch.randint(0, 21, (8, 3), generator=torch.Generator().manual_seed(2))
    ref = torch.nn.functional.cross_entropy(logits.reshape(-1, 21), y.reshape(-1))
    assert soft_cross_entropy(logits, y, 0.0).item() == pytest.approx(ref.item(), rel=1e-6)
