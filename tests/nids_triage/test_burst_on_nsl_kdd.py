"""The burst signal on real NSL-KDD flows: a file of ordinary normal traffic is left alone whatever its size,
and a campaign called normal (KDDTest+'s guess_passwd logins) is flagged. Needs BARENET_DATA (never downloads)."""
import os
from pathlib import Path

import numpy as np
import pytest

from nids_triage import TrainConfig, TriageModel, load_nsl_kdd
from nids_triage.model import training_split

DATA = os.environ.get("BARENET_DATA")
pytestmark = pytest.mark.skipif(not DATA or not (Path(DATA) / "nsl-kdd").is_dir(),
                                reason="BARENET_DATA/nsl-kdd is not there (no download in tests)")


@pytest.fixture(scope="module")
def trained():
    train = load_nsl_kdd("train", Path(DATA) / "nsl-kdd", download=False)
    config = TrainConfig(hidden=(32,), members=1, epochs=2, seed=0)
    return train, config, TriageModel.train(train, "5class", config)


def test_a_file_of_ordinary_normal_traffic_is_not_a_burst(trained):
    # Most real captures are mostly normal traffic. Against all training flows (half of them attacks) every
    # common normal cell of such a file would look over-represented (19 % of 5,000 normal flows flagged when
    # measured); against the normal training flows it is not.
    train, config, model = trained
    part, val, _, _ = training_split(train, config)
    assert model.burst.n_train_ == int((part.attack == "normal").sum())  # the reference: normal training flows
    normal = np.flatnonzero(val.attack == "normal")
    for size in (1_000, 5_000, len(normal)):
        rows = np.random.default_rng(size).choice(normal, size, replace=False)
        scored = model.score(val.subset(rows))
        assert (scored.burst > model.burst.threshold_).mean() <= 0.04, size


def test_a_campaign_called_normal_is_flagged(trained):
    _, _, model = trained
    test = load_nsl_kdd("test+", Path(DATA) / "nsl-kdd", download=False)
    scored = model.score(test)
    campaign = (test.attack == "guess_passwd") & (scored.labels == "normal")
    assert campaign.sum() > 100
    assert (scored.burst[campaign] > model.burst.threshold_).mean() > 0.5
    assert np.all(scored.burst[scored.labels != "normal"] == 0.0)
