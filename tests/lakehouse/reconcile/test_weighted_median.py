"""The vectorised weighted median against a direct definition, and on hand-made cases."""

import numpy as np
import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from lakehouse.reconcile.weighted_median import weighted_median


def test_weights_move_the_median():
    f = pl.DataFrame(
        {"g": [1, 1, 1, 2, 2, 2], "value": [1.0, 2.0, 10.0, 1.0, 2.0, 10.0], "w": [1.0, 1.0, 1.0, 1.0, 1.0, 5.0]}
    )
    out = weighted_median(f, ["g"]).sort("g")
    assert out["value"].to_list() == [2.0, 10.0]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.floats(1, 100), st.floats(0.01, 10)), min_size=1, max_size=40))
def test_matches_the_definition(rows):
    f = pl.DataFrame(rows, schema=["g", "value", "w"], orient="row")
    got = dict(weighted_median(f, ["g"]).rows())
    for g, part in f.partition_by("g", as_dict=True).items():
        v, w = part.sort("value")["value"].to_numpy(), part.sort("value")["w"].to_numpy()
        want = v[np.searchsorted(np.cumsum(w), w.sum() * (0.5 - 1e-12))]
        assert got[g[0]] == want
