"""Best-of-N ranking (absolute scores, unscored last, ties) and LATENT / MASK / IMAGE row selection."""
import numpy as np
import pytest
import torch

from rationalrewards.engine.select import (RankedItem, SelectionError, rank, score_of, select_images,
                                           select_latent, select_mask, take_rows)
from rationalrewards.models.format.critique import AspectScore, Comparison, Critique
from rationalrewards.models.format.scoring import overall_from_scores


def crit(tf, pq, tr=None):
    """A T2I critique with the given scores (tr None = N/A); a score of "?" is unreadable."""
    def a(s, na=False):
        return AspectScore(None if s == "?" else s, na, "why")
    aspects = {"text_faithfulness": a(tf), "physical_quality": a(pq),
               "text_rendering": a(tr, na=tr is None)}
    overall = overall_from_scores((x.score, x.not_applicable) for x in aspects.values())
    return Critique("t2i", aspects, overall)


def test_rank_orders_by_absolute_overall():
    cs = [crit(2, 2), crit(4, 4), crit(3, 3)]
    got = rank(cs, k=3)
    assert [r.index for r in got] == [1, 2, 0]
    assert got[0].score == pytest.approx(1.0)
    assert got[2].score == pytest.approx(1 / 3)
    assert got[0].critique is cs[1]


def test_adding_a_worse_image_changes_no_other_score_or_order():
    cs = [crit(3, 2.5), crit(3.5, 4), crit(2, 3)]
    before = {r.index: r.score for r in rank(cs, k=3)}
    after = rank(cs + [crit(1, 1)], k=4)
    assert {r.index: r.score for r in after if r.index < 3} == before
    assert [r.index for r in after][:3] == [r.index for r in rank(cs, k=3)]
    assert after[-1].index == 3
    # and a better one only pushes the others down, leaving their scores alone
    better = rank([crit(4, 4)] + cs, k=4)
    assert {r.index - 1: r.score for r in better if r.index > 0} == before


def test_unscored_rank_last_and_are_marked():
    cs = [crit("?", 4), crit(1, 1), crit(3, 3)]
    got = rank(cs, k=3)
    assert [r.index for r in got] == [2, 1, 0]
    assert got[-1].unscored and got[-1].score is None
    assert not got[0].unscored


def test_ties_keep_earlier_index():
    cs = [crit(2, 2), crit(3, 3), crit(3, 3), crit(3, 3)]
    assert [r.index for r in rank(cs, k=4)] == [1, 2, 3, 0]
    unscored = [crit("?", 1), crit("?", 2)]
    assert [r.index for r in rank(unscored, k=2)] == [0, 1]


def test_k_limits_and_clamps():
    cs = [crit(2, 2), crit(4, 4), crit(3, 3)]
    assert [r.index for r in rank(cs)] == [1]
    assert len(rank(cs, k=10)) == 3
    for bad in (0, -1, 1.5, True):
        with pytest.raises(SelectionError, match="k must be"):
            rank(cs, k=bad)


def test_weights_change_ranking_and_are_validated():
    cs = [crit(4, 1), crit(2, 3)]
    assert rank(cs)[0].index == 0  # means 2.5 vs 2.5 -> tie -> earlier index
    assert rank(cs, weights={"physical_quality": 3.0})[0].index == 1
    assert rank(cs, weights={"physical_quality": 0.0})[0].index == 0
    assert score_of(cs[0], {"physical_quality": 0}) == pytest.approx(1.0)
    with pytest.raises(SelectionError, match="unknown aspect 'beauty'"):
        rank(cs, weights={"beauty": 1.0})
    with pytest.raises(SelectionError, match=">= 0"):
        rank(cs, weights={"text_faithfulness": -1})
    with pytest.raises(SelectionError, match=">= 0"):
        rank(cs, weights={"text_faithfulness": float("nan")})


def test_bad_critique_inputs():
    with pytest.raises(SelectionError, match="empty"):
        rank([])
    with pytest.raises(SelectionError, match=r"critiques\[1\] is a str"):
        rank([crit(3, 3), "3.5"])
    comp = Comparison("pairwise-t2i", {}, 0.5, 0.5, "tie")
    with pytest.raises(SelectionError, match="Comparison"):
        rank([comp])
    assert isinstance(rank(crit(3, 3))[0], RankedItem)  # a single critique is a batch of one


def test_select_images_tensor_and_array():
    imgs = torch.arange(4, dtype=torch.float32).view(4, 1, 1, 1).expand(4, 2, 3, 3).contiguous()
    got = select_images(imgs, [2, 0])
    assert got.shape == (2, 2, 3, 3) and got[:, 0, 0, 0].tolist() == [2.0, 0.0]
    assert got.dtype == imgs.dtype
    arr = np.arange(4)[:, None] * np.ones((4, 5))
    assert select_images(arr, [3])[:, 0].tolist() == [3.0]
    assert take_rows(["a", "b", "c"], [2, 1]) == ["c", "b"]
    with pytest.raises(SelectionError, match="out of range for images with batch size 4"):
        select_images(imgs, [4])


def test_select_latent_rows_noise_mask_and_batch_index():
    lat = {"samples": torch.arange(3.0).view(3, 1, 1, 1).expand(3, 4, 2, 2),
           "noise_mask": torch.arange(3.0).view(3, 1, 1, 1).expand(3, 1, 2, 2),
           "batch_index": [10, 11, 12], "other": "kept"}
    got = select_latent(lat, [2, 1], batch_size=3)
    assert got["samples"][:, 0, 0, 0].tolist() == [2.0, 1.0]
    assert got["noise_mask"][:, 0, 0, 0].tolist() == [2.0, 1.0]
    assert got["batch_index"] == [12, 11]
    assert got["other"] == "kept"
    assert lat["samples"].shape[0] == 3  # input untouched

    shared = torch.ones(1, 1, 2, 2)
    got = select_latent({"samples": torch.zeros(3, 4, 2, 2), "noise_mask": shared}, [0], 3)
    assert got["noise_mask"] is shared


def test_select_latent_mismatched_batch_names_the_input():
    with pytest.raises(SelectionError, match="latent has a batch of 2 but the images have 3"):
        select_latent({"samples": torch.zeros(2, 4, 2, 2)}, [0], batch_size=3)
    with pytest.raises(SelectionError, match="latent noise_mask has a batch of 2"):
        select_latent({"samples": torch.zeros(3, 4, 2, 2), "noise_mask": torch.zeros(2, 1, 2, 2)}, [0], 3)
    with pytest.raises(SelectionError, match="LATENT dict"):
        select_latent(torch.zeros(3, 4, 2, 2), [0], 3)


def test_select_mask_rows_shared_and_mismatch():
    m = torch.arange(4.0).view(4, 1, 1).expand(4, 3, 3)
    assert select_mask(m, [3, 1], batch_size=4)[:, 0, 0].tolist() == [3.0, 1.0]
    one = torch.ones(1, 3, 3)
    assert select_mask(one, [2], batch_size=4) is one
    flat = torch.ones(3, 3)
    assert select_mask(flat, [2], batch_size=4) is flat
    with pytest.raises(SelectionError, match="mask has a batch of 3 but the images have 4"):
        select_mask(torch.zeros(3, 3, 3), [0], batch_size=4)
    with pytest.raises(SelectionError, match="MASK tensor"):
        select_mask([[0.0]], [0], 1)
