from __future__ import annotations

import numpy as np
import pytest
import torch

from orisel.kernel.errors import InvalidArgument
from orisel.models import CNN7
from orisel.science.ablation import channel_means, sweep
from orisel.science.hooks import ablated
from orisel.science.selection import cumulative_masks, median_split, random_ranking, ranking
from tests.conftest import conv_of


@pytest.fixture(scope="module")
def net() -> CNN7:
    torch.manual_seed(0)
    model = CNN7().eval()
    # Non-trivial BN statistics, so BN outputs are not just the conv outputs.
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d | torch.nn.BatchNorm1d):
                assert m.running_mean is not None
                assert m.running_var is not None
                m.running_mean.uniform_(0.0, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.bias.uniform_(-0.2, 0.2)
    return model


@pytest.fixture(scope="module")
def batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(60, 3, 32, 32, generator=g), torch.arange(60) % 10


def _capture(model: torch.nn.Module, name: str, x: torch.Tensor) -> torch.Tensor:
    seen: list[torch.Tensor] = []
    handle = dict(model.named_modules())[name].register_forward_hook(
        lambda _m, _i, o: seen.append(o)
    )
    with torch.no_grad():
        model(x)
    handle.remove()
    return seen[0]


def test_hook_changes_exactly_the_chosen_channels(
    net: CNN7, batch: tuple[torch.Tensor, torch.Tensor]
) -> None:
    x, _ = batch
    before_bn3 = _capture(net, "bn3", x)
    before_layer3 = _capture(net, "layer3", x)
    with ablated(net, "bn3", [2, 5, 40]):
        after_bn3 = _capture(net, "bn3", x)
        after_layer3 = _capture(net, "layer3", x)
    assert torch.equal(before_layer3, after_layer3)  # upstream untouched
    chosen = torch.zeros(64, dtype=torch.bool)
    chosen[[2, 5, 40]] = True
    assert (after_bn3[:, chosen] == 0).all()
    assert (before_bn3[:, chosen] != 0).any()
    assert torch.equal(after_bn3[:, ~chosen], before_bn3[:, ~chosen])
    assert torch.equal(_capture(net, "bn3", x), before_bn3)  # hook removed on exit


def test_unit_without_outgoing_weights_changes_nothing(
    batch: tuple[torch.Tensor, torch.Tensor],
) -> None:
    torch.manual_seed(0)
    model = CNN7().eval()
    with torch.no_grad():
        conv_of(model, "layer4").weight[:, 7] = 0.0  # bn3's channel 7 feeds nothing
        ref = model(batch[0])
        with ablated(model, "bn3", [7]):
            assert torch.equal(model(batch[0]), ref)
        with ablated(model, "bn3", [8]):
            assert not torch.equal(model(batch[0]), ref)


def test_mean_clamp_of_every_channel_makes_outputs_identical(
    net: CNN7, batch: tuple[torch.Tensor, torch.Tensor]
) -> None:
    x, y = batch
    mean = channel_means(net, "bn6", x)
    with ablated(net, "bn6", range(128), "mean", mean), torch.no_grad():
        out = net(x)
    # Every image then sees the same activations after bn6, hence the same output.
    assert torch.allclose(out, out[:1].expand_as(out), atol=1e-6)
    res = sweep(net, "bn6", np.ones((1, 128), dtype=bool), x, y, mode="mean")[0]
    assert res.accuracy == pytest.approx(float((y == out[0].argmax()).float().mean()))


@pytest.mark.parametrize("mode", ["zero", "mean"])
@pytest.mark.parametrize("site", ["bn1", "bn3", "layer5", "bn7"])
def test_cached_engine_equals_naive(
    net: CNN7, batch: tuple[torch.Tensor, torch.Tensor], site: str, mode: str
) -> None:
    x, y = batch
    c = _capture(net, site, x[:1]).shape[1]
    scores = np.random.default_rng(0).random(c)
    fractions = [0.0, 0.1, 0.5, 1.0]
    masks = np.concatenate(
        [
            cumulative_masks(ranking(scores, "descending"), fractions),
            cumulative_masks(ranking(scores, "ascending"), fractions),
            cumulative_masks(random_ranking(c, 3), fractions),
        ]
    )
    fast = sweep(net, site, masks, x, y, mode=mode, chunk_images=25, batch_bytes=40 * 1024)  # type: ignore[arg-type]
    slow = sweep(net, site, masks, x, y, mode=mode, engine="naive", chunk_images=25)  # type: ignore[arg-type]
    for a, b in zip(fast, slow, strict=True):
        assert a.accuracy == pytest.approx(b.accuracy, abs=1e-12)
        assert a.loss_increase_mean == pytest.approx(b.loss_increase_mean, abs=1e-5)
        assert a.loss_increase_sem == pytest.approx(b.loss_increase_sem, abs=1e-5)
        np.testing.assert_allclose(a.per_class_accuracy, b.per_class_accuracy)
    assert fast[0].loss_increase_mean == 0.0  # fraction 0 is the intact network
    assert fast[0].n_ablated == 0
    assert fast[3].n_ablated == c


def test_orders_and_fractions() -> None:
    scores = np.array([0.1, 0.9, 0.5, 0.5, 0.0])
    np.testing.assert_array_equal(ranking(scores, "descending"), [1, 2, 3, 0, 4])
    np.testing.assert_array_equal(ranking(scores, "ascending"), [4, 0, 2, 3, 1])
    masks = cumulative_masks(ranking(scores, "descending"), [0.0, 0.4, 1.0])
    np.testing.assert_array_equal(masks.sum(axis=1), [0, 2, 5])
    assert masks[1].tolist() == [False, True, True, False, False]
    with pytest.raises(InvalidArgument, match="fractions"):
        cumulative_masks(ranking(scores, "descending"), [1.5])


def test_median_split_handles_ties_and_dead_units() -> None:
    scores = np.array([0.0, 0.0, 0.2, 0.4, 0.4, 0.4, 0.7, 0.9])
    dead = np.array([True, True, False, False, False, False, False, False])
    s = median_split(scores, dead)
    assert s.median == pytest.approx(0.4)
    assert s.top.tolist() == [False] * 6 + [True, True]
    assert s.bottom.tolist() == [False, False, True] + [False] * 5
    assert s.ties == 3
    assert s.dead_excluded == 2
    with_dead = median_split(scores, dead, include_dead=True)
    assert with_dead.bottom[:2].all()


def test_random_halves_rank_a_half_that_carries_the_signal() -> None:
    """A layer of eight units where only units 0-3 reach the output: ablating them (the top
    half) is worse than almost any random half of four, and ablating units 4-7 (the bottom
    half) changes nothing, better than almost any random half."""
    from orisel.science.selection import random_halves
    from orisel.science.statistics import percentile_of

    torch.manual_seed(0)
    layer = torch.nn.Conv2d(3, 8, 1)
    head = torch.nn.Linear(8, 10)
    with torch.no_grad():
        head.weight[:, 4:] = 0.0
        head.weight[:, :4] *= 5
    model = torch.nn.Sequential(
        layer, torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), head
    ).eval()
    x = torch.rand(200, 3, 4, 4)
    with torch.no_grad():
        y = model(x).argmax(1)  # labels the intact network gets right
    pool = np.ones(8, dtype=bool)
    halves = random_halves(pool, 4, 100, seed=0)
    assert (halves.sum(axis=1) == 4).all()
    assert len({h.tobytes() for h in halves}) > 30  # 70 possible halves, drawn at random
    top, bottom = np.arange(8) < 4, np.arange(8) >= 4
    masks = np.concatenate([top[None], bottom[None], halves])
    results = sweep(model, "1", masks, x, y)
    losses = np.array([r.loss_increase_mean for r in results])
    assert losses[1] == pytest.approx(0.0, abs=1e-6)
    assert percentile_of(losses[0], losses[2:]) > 95
    assert percentile_of(losses[1], losses[2:]) < 5
    smaller = random_halves(np.arange(8) % 2 == 0, 2, 10, seed=1)
    assert not smaller[:, 1::2].any()  # drawn from the pool only
    with pytest.raises(InvalidArgument, match="size"):
        random_halves(pool, 9, 1, seed=0)


def test_matched_halves_remove_what_the_covariate_explains() -> None:
    """Four pairs of twin units (the same weights in and out) whose outgoing strength doubles
    from pair to pair, scored by that strength (a twin scores 0.05 more): the plain median
    split's top half (the strong pairs) hurts far more than its bottom half, while halves
    matched on the outgoing norm take one twin of every pair each and hurt exactly the same.
    Ties in score and an odd unit out go to neither half."""
    from orisel.science.selection import matched_split

    torch.manual_seed(0)
    layer = torch.nn.Conv2d(3, 8, 1)
    head = torch.nn.Linear(8, 10)
    with torch.no_grad():
        layer.weight.abs_()  # every unit responds
        layer.weight[1::2] = layer.weight[0::2]
        assert layer.bias is not None
        layer.bias.fill_(0.1)
        strength = torch.tensor([1.0, 2.0, 4.0, 8.0]).repeat_interleave(2)
        head.weight[:, 1::2] = head.weight[:, 0::2]
        head.weight.mul_(strength)
    model = torch.nn.Sequential(
        layer, torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), head
    ).eval()
    x = torch.rand(300, 3, 4, 4)
    with torch.no_grad():
        y = model(x).argmax(1)
    norm = head.weight.detach().norm(dim=0).numpy().astype(np.float64)
    scores = norm + 0.05 * (np.arange(8) % 2)
    split = median_split(scores, np.zeros(8, dtype=bool))
    top, bottom = matched_split(scores, norm, split.pool)
    assert np.flatnonzero(top).tolist() == [1, 3, 5, 7]
    assert np.flatnonzero(bottom).tolist() == [0, 2, 4, 6]
    masks = np.stack([split.top, split.bottom, top, bottom])
    loss = np.array([r.loss_increase_mean for r in sweep(model, "1", masks, x, y)])
    assert loss[0] - loss[1] > 0.5
    assert loss[2] == pytest.approx(loss[3], abs=1e-6)
    tied = np.array([1.0, 1.0, 2.0, 3.0, 5.0])
    t, b = matched_split(tied, np.arange(5.0), np.ones(5, dtype=bool))
    assert np.flatnonzero(t).tolist() == [3]
    assert np.flatnonzero(b).tolist() == [2]


def test_cnn7_unit_covariates_are_read_from_its_weights() -> None:
    """Mean activation is BatchNorm's running mean, the gain |gamma| / sqrt(var + eps), and the
    outgoing norm the next layer's weights on the unit (a conv's input channel, the dense
    layer's flattened inputs of the channel); other models have none."""
    from orisel.models.cnn7 import BN_EPS, unit_covariates

    model = CNN7()
    modules = dict(model.named_modules())
    bn1, layer2 = modules["bn1"], modules["layer2"]
    assert isinstance(bn1, torch.nn.BatchNorm2d)
    assert isinstance(layer2, torch.nn.Conv2d)
    assert bn1.running_mean is not None
    assert bn1.running_var is not None
    with torch.no_grad():
        bn1.running_mean.copy_(torch.arange(32.0))
        bn1.running_var.fill_(4.0 - BN_EPS)
        bn1.weight.copy_(-torch.ones(32))
        layer2.weight.zero_()
        layer2.weight[:, 5] = 1.0  # unit 5 of layer1 reaches layer2 through 32 x 3 x 3 weights
        model.fc1.weight.zero_()
        model.fc1.weight[:, 7] = 2.0  # layer6 is 1x1: unit 7 is fc1's input 7
    c = unit_covariates(model, "layer1")
    np.testing.assert_allclose(c["mean_activation"].numpy(), np.arange(32.0))
    np.testing.assert_allclose(c["bn_gain"].numpy(), 0.5, rtol=1e-6)
    expected = np.zeros(32)
    expected[5] = np.sqrt(32 * 9)
    np.testing.assert_allclose(c["outgoing_norm"].numpy(), expected, rtol=1e-6)
    out6 = unit_covariates(model, "layer6")["outgoing_norm"].numpy()
    assert out6[7] == pytest.approx(2.0 * np.sqrt(512))
    assert np.count_nonzero(out6) == 1
    assert unit_covariates(model, "fc1")["outgoing_norm"].shape == (512,)
    assert unit_covariates(torch.nn.Sequential(torch.nn.Linear(2, 2)), "0") == {}


class SharedReLU(torch.nn.Module):
    """One ReLU module applied after two convolutions: the forward pass calls it twice."""

    def __init__(self, second: int = 16) -> None:
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, 16, 3, padding=1)
        self.conv2 = torch.nn.Conv2d(16, second, 3, padding=1)
        self.act = torch.nn.ReLU()
        self.head = torch.nn.Linear(second, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.head(self.act(self.conv2(self.act(self.conv1(x)))).mean((2, 3)))
        return out


def _by_hand(
    model: SharedReLU, x: torch.Tensor, first: list[int], second: list[int]
) -> torch.Tensor:
    """The network's logits with channels of the first and the second ReLU call zeroed,
    computed without hooks."""
    with torch.no_grad():
        a = torch.relu(model.conv1(x))
        a[:, first] = 0.0
        b = torch.relu(model.conv2(a))
        b[:, second] = 0.0
        out: torch.Tensor = model.head(b.mean((2, 3)))
    return out


@pytest.mark.parametrize("second", [16, 8])
def test_a_reused_module_is_ablated_only_at_the_named_call(
    batch: tuple[torch.Tensor, torch.Tensor], second: int
) -> None:
    torch.manual_seed(3)
    model = SharedReLU(second).eval()
    x, y = batch
    ce = torch.nn.functional.cross_entropy
    intact = ce(_by_hand(model, x, [], []), y, reduction="none")
    units = [0, 3, 5]
    for site, first, later in (("act:1", units, []), ("act:2", [], units)):
        with ablated(model, site, units), torch.no_grad():
            torch.testing.assert_close(model(x), _by_hand(model, x, first, later))
        (res,) = sweep(
            model, site, np.isin(np.arange(16 if site == "act:1" else second), units)[None], x, y
        )
        want = (ce(_by_hand(model, x, first, later), y, reduction="none") - intact).mean()
        assert res.loss_increase_mean == pytest.approx(float(want), abs=1e-6)
    with (
        pytest.raises(InvalidArgument, match=r"runs 2 times \(act:1, act:2\)"),
        ablated(model, "act", units),
    ):
        model(x)
    makes = r"a call the forward pass makes \(act:1, act:2\)"
    with pytest.raises(InvalidArgument, match=makes), ablated(model, "act:3", units):
        model(x)


def test_a_reused_modules_mean_is_of_its_named_call(
    batch: tuple[torch.Tensor, torch.Tensor],
) -> None:
    torch.manual_seed(3)
    model = SharedReLU(8).eval()
    x, _ = batch
    with torch.no_grad():
        first = torch.relu(model.conv1(x)).mean(0)
        second = torch.relu(model.conv2(torch.relu(model.conv1(x)))).mean(0)
    torch.testing.assert_close(channel_means(model, "act:1", x, batch_size=25), first)
    torch.testing.assert_close(channel_means(model, "act:2", x, batch_size=25), second)


def test_resnet_calls_of_a_blocks_relu_are_ablated_apart() -> None:
    """torchvision's BasicBlock runs its one ReLU after bn1 and after the residual sum; each
    call is ablated alone, against the block computed by hand."""
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=10).eval()
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    units = [1, 7, 30]

    def by_hand(call: int) -> torch.Tensor:
        m, block = model, model.layer1[0]
        with torch.no_grad():
            h = m.maxpool(m.relu(m.bn1(m.conv1(x))))
            a = torch.relu(block.bn1(block.conv1(h)))
            if call == 1:
                a[:, units] = 0.0
            b = torch.relu(block.bn2(block.conv2(a)) + h)
            if call == 2:
                b[:, units] = 0.0
            h = m.layer4(m.layer3(m.layer2(m.layer1[1](b))))
            out: torch.Tensor = m.fc(torch.flatten(m.avgpool(h), 1))
        return out

    with torch.no_grad():
        intact = model(x)
    for call in (1, 2):
        with ablated(model, f"layer1.0.relu:{call}", units), torch.no_grad():
            got = model(x)
        torch.testing.assert_close(got, by_hand(call))
        assert not torch.allclose(got, intact)
    assert not torch.allclose(by_hand(1), by_hand(2))
