"""Attention scores against ground-truth masks: closed-form cases and a model's prompt layers."""

import math

import pandas as pd
import pytest
import torch

from vmp.analysis.attention import (
    SCORES,
    attention_scores,
    lambda_effects,
    motion_regions,
    score_model,
    summarise,
    write_tables,
)
from vmp.models import create_model


def _masks(n=2, t=4, h=8, w=10):
    """An object 2 x 2 moving one pixel right per frame (x = k, y = 1), a still distractor."""
    obj = torch.zeros(n, t + 1, h, w)
    distractor = torch.zeros(n, t + 1, h, w)
    for k in range(t + 1):
        obj[:, k, 1:3, k : k + 2] = 1
        distractor[:, k, 5:7, 7:9] = 1
    return obj, distractor


def test_motion_region_is_the_object_in_either_frame():
    obj, distractor = _masks()
    region, other = motion_regions(obj, distractor)
    assert region.shape == (2, 4, 8, 10)
    # frames k and k+1: columns k .. k+2, rows 1 .. 2
    assert region[0, 2].nonzero()[:, 1].unique().tolist() == [2, 3, 4]
    assert region[0, 2].sum() == 6 and other[0, 2].sum() == 4 and not (region & other).any()


def test_scores_of_maps_with_known_answers():
    obj, distractor = _masks()
    region, other = motion_regions(obj, distractor)
    exact = attention_scores(region.float(), obj, distractor)
    for key, value in {"object_share": 1, "distractor_share": 0, "background_share": 0}.items():
        torch.testing.assert_close(exact[key], torch.full((2,), float(value)))
    torch.testing.assert_close(exact["precision"], torch.ones(2))
    torch.testing.assert_close(exact["recall"], torch.ones(2))

    uniform = attention_scores(torch.full((2, 4, 8, 10), 0.25), obj, distractor)
    torch.testing.assert_close(uniform["object_share"], torch.full((2,), 24 / 320))
    torch.testing.assert_close(uniform["distractor_share"], torch.full((2,), 16 / 320))
    torch.testing.assert_close(uniform["background_share"], torch.full((2,), 280 / 320))
    assert torch.isnan(uniform["precision"]).all() and (uniform["recall"] == 0).all()
    assert (uniform["variation"] == 0).all()

    # half of the map on the distractor, half on the object's region, at one value each
    half = 0.8 * other.float() + 0.8 * region.float() * (torch.arange(10) % 2 == 0)
    scores = attention_scores(half, obj, distractor)
    hits = (region & (torch.arange(10) % 2 == 0)).sum((1, 2, 3)).float()
    torch.testing.assert_close(scores["recall"], hits / region.sum((1, 2, 3)))
    torch.testing.assert_close(scores["precision"], hits / (hits + other.sum((1, 2, 3))))

    ramp = torch.arange(4.0).view(1, 4, 1, 1).expand(2, 4, 8, 10) * 0.1  # A_t = 0.1 t
    torch.testing.assert_close(
        attention_scores(ramp, obj, distractor)["variation"], torch.full((2,), 0.01)
    )
    with pytest.raises(ValueError, match=r"expected \(2, 5, 8, 10\)"):
        attention_scores(ramp, obj[:, :4], distractor[:, :4])


def test_a_model_is_scored_per_prompt_layer():
    torch.manual_seed(0)
    obj, distractor = _masks(n=2, t=8, h=32, w=32)
    batch = {
        "video": torch.rand(2, 3, 9, 32, 32),
        "object_mask": obj,
        "distractor_mask": distractor,
    }
    model = create_model("slowfast_tiny", 5, prompt="vmp")
    scores = score_model(model, [batch, batch])
    assert list(scores) == ["slow", "fast"]
    for per_layer in scores.values():
        assert set(per_layer) == set(SCORES)
        shares = (
            per_layer["object_share"]
            + per_layer["distractor_share"]
            + per_layer["background_share"]
        )
        assert math.isclose(shares, 1.0, rel_tol=1e-5)
        assert 0 <= per_layer["recall"] <= 1
    assert score_model(create_model("c2d_tiny", 5), [batch]) == {}


def test_lambda_effects_pair_each_seed_with_its_lambda_0_run(tmp_path):
    rows = []
    for lam, variation in ((0.0, [0.030, 0.034, 0.026]), (2.5, [0.020, 0.022, 0.018])):
        for seed, value in enumerate(variation):
            row = {"dataset": "synth_gym", "split": "1", "backbone": "i3d_tiny", "variant": "vmp"}
            row |= {"lambda": lam, "seed": seed, "pathway": "video"} | dict.fromkeys(SCORES, 0.5)
            rows.append(row | {"variation": value})
    other = dict(rows[0]) | {"backbone": "x3d_tiny", "lambda": 2.5}  # no lambda-0 partner group
    rows = pd.DataFrame([*rows, other])
    effects = lambda_effects(rows).set_index("lambda")
    assert set(effects["backbone"]) == {"i3d_tiny"}  # groups without lambda 0 are left out
    # differences -0.010, -0.012, -0.008: mean -0.010, sd 0.002, t(0.975, 2) = 4.3027
    half = 4.302653 * 0.002 / math.sqrt(3)
    assert effects.loc[2.5, "delta_variation"] == pytest.approx(-0.010)
    assert effects.loc[2.5, "delta_variation_high"] == pytest.approx(-0.010 + half)
    assert effects.loc[2.5, "verdict"] == "loss" and effects.loc[2.5, "pairs"] == 3
    assert effects.loc[2.5, "delta_object_share"] == pytest.approx(0.0)
    paths = write_tables(rows, summarise(rows), tmp_path / "attention")
    assert [p.name for p in paths][2] == "attention_lambda.csv"
    markdown = paths[-1].read_text()
    assert (
        "Every lambda against lambda 0" in markdown
        and "0.02 (-0.01 [-0.015, -0.00503])" in markdown
    )
