"""The selectivity term in training: tune's numbers on the same weights, one alpha per
network of a stack, its settings bounded and named, its runs resumable."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from pydantic import ValidationError

import orisel
from orisel.data.prepare import PreparedData
from orisel.kernel.errors import InvalidArgument
from orisel.models.cnn7 import CNN7
from orisel.models.stacked import StackedCNN7
from orisel.science.selectivity import layer_responses, unit_gosi
from orisel.training.config import TrainConfig
from orisel.training.loop import Trainer
from orisel.training.population import PopulationTrainer
from orisel.training.select import SelectTerm, StackedTerm
from tests.training.conftest import tiny_config

LOWER = ("layer1", "layer2", "layer3")
CPU = torch.device("cpu")


def test_the_terms_gosi_is_tunes_on_the_same_weights(untrained_checkpoint: Path) -> None:
    """On tune's whole grating grid no relaxation applies: per unit and per layer the term's
    number is the one `orisel tune` writes."""
    net = orisel.load(untrained_checkpoint, device="cpu")
    table = orisel.tune(net, stimuli=("gratings",), permutations=0, layers=LOWER, progress=False)
    assert net.mean_image is not None
    cfg = TrainConfig(select_reg=1.0, select_frequencies=9, select_phases=4, device="cpu")
    term = SelectTerm.of(cfg, net.model, net.mean_image, CPU)
    assert term.shape == (12, 9, 4)
    responses = layer_responses(net.model, term.stimuli, LOWER)
    layers = term.layer_gosi(net.model)
    for layer in LOWER:
        rows = table[table.layer == layer].sort_values("unit")
        g, live = unit_gosi(responses[layer], term.shape)
        np.testing.assert_allclose(g.detach().numpy(), rows.gosi.to_numpy(), atol=2e-6)
        assert (~live.numpy() == rows.dead.to_numpy()).all()
        want = rows.gosi[~rows.dead].mean()
        assert float(layers[layer].detach()) == pytest.approx(want, abs=2e-6)
    both = float(term.value(net.model).detach())
    assert both == pytest.approx(np.mean([float(v.detach()) for v in layers.values()]))


def test_a_stack_gives_each_network_its_own_term() -> None:
    torch.manual_seed(1)
    nets = [CNN7() for _ in range(3)]
    mean = np.random.default_rng(0).uniform(0.3, 0.6, (3, 3, 32, 32)).astype(np.float32)
    cfg = TrainConfig(select_reg=1.0, select_layers=("layer1", "layer3"), device="cpu")
    terms = [SelectTerm.of(cfg, n, mean[k], CPU) for k, n in enumerate(nets)]
    alphas = [2.0, -1.0, 0.0]
    stacked = StackedCNN7(nets)
    stack = StackedTerm.of(terms, alphas)
    values = stack.values(stacked)
    want = torch.stack([t.value(n) for t, n in zip(terms, nets, strict=True)])
    torch.testing.assert_close(values, want, rtol=1e-5, atol=1e-6)
    # Each network's gradient is its own alpha times its own term's.
    (stack.alphas * values).sum().backward()
    for k, (t, n) in enumerate(zip(terms, nets, strict=True)):
        weight = dict(n.named_parameters())["layer1.weight"]
        (g,) = torch.autograd.grad(alphas[k] * t.value(n), [weight])
        got = stacked.t("layer1.weight").grad[k]  # type: ignore[index]
        torch.testing.assert_close(got, g, rtol=1e-4, atol=1e-6)
    assert stacked.training  # the grating pass reads BatchNorm's statistics, then restores


def test_a_stack_refuses_a_layer_it_has_no_name_for() -> None:
    cfg = TrainConfig(select_reg=1.0, select_layers=("fc1",), device="cpu")
    term = SelectTerm.of(cfg, CNN7(), np.zeros((3, 32, 32), np.float32), CPU)
    with pytest.raises(InvalidArgument, match="select_layers"):
        StackedTerm.of([term], [1.0])


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("select_reg", 100.5),
        ("select_reg", -101),
        ("select_reg", float("nan")),
        ("select_layers", ()),
        ("select_layers", ("layer1; rm",)),
        ("select_every", 0),
        ("select_frequencies", 10),
        ("select_phases", 0),
    ],
)
def test_settings_out_of_bounds_are_refused_naming_the_field(field: str, value: object) -> None:
    with pytest.raises(ValidationError, match=field):
        TrainConfig.model_validate({field: value})


def test_an_unknown_layer_is_refused_naming_the_field(
    tiny_data: PreparedData, tmp_path: Path
) -> None:
    cfg = tiny_config(select_reg=1.0, select_layers=("layer1", "layer9"))
    with pytest.raises(InvalidArgument, match=r"select_layers.*layer9"):
        Trainer(cfg, tiny_data, tmp_path / "run", progress=False)


def _train(data: PreparedData, run: Path, alpha: float, max_steps: int | None = None) -> Trainer:
    cfg = tiny_config(select_reg=alpha, select_every=2, epochs=1)
    trainer = Trainer.open(cfg, data, run, resume=run.exists(), progress=False)
    trainer.run(max_steps)
    return trainer


@pytest.mark.integration  # trains
def test_the_term_changes_training_and_is_recorded(tiny_data: PreparedData, tmp_path: Path) -> None:
    plain = _train(tiny_data, tmp_path / "plain", 0.0)
    pushed = _train(tiny_data, tmp_path / "pushed", 20.0)
    a = dict(plain.model.named_parameters())
    b = dict(pushed.model.named_parameters())
    assert not torch.equal(a["layer1.weight"], b["layer1.weight"])
    # The layers above the last chosen one get the cross-entropy's gradient alone, yet
    # differ too: their inputs changed.
    manifest = json.loads((tmp_path / "pushed" / "manifest.json").read_text())
    assert manifest["config"]["select_reg"] == 20.0
    for entry in manifest["history"]:
        assert set(entry["selectivity"]) == set(LOWER)
        assert all(0.0 <= v <= 1.0 for v in entry["selectivity"].values())
    assert (
        "selectivity"
        not in json.loads((tmp_path / "plain" / "manifest.json").read_text())["history"][0]
    )
    # Alpha 20 moved the lower layers' gOSI up (within 8 steps, 4 of them with the term).
    first, last = manifest["history"][0]["selectivity"], manifest["history"][-1]["selectivity"]
    assert np.mean(list(last.values())) > np.mean(list(first.values()))


@pytest.mark.integration  # trains
def test_a_run_with_the_term_resumes_bit_identically(
    tiny_data: PreparedData, tmp_path: Path
) -> None:
    whole = _train(tiny_data, tmp_path / "whole", -5.0)
    _train(tiny_data, tmp_path / "split", -5.0, max_steps=3)
    split = _train(tiny_data, tmp_path / "split", -5.0)
    for (name, p), q in zip(
        whole.model.state_dict().items(), split.model.state_dict().values(), strict=True
    ):
        assert torch.equal(p, q), name


def _one_step(data: PreparedData, root: Path, layout: str, alphas: tuple[float, ...]) -> list:  # type: ignore[type-arg]
    trainers = [
        Trainer.open(
            tiny_config(seed=seed, select_reg=alpha, select_every=1, epochs=1, optimizer="sgd"),
            data,
            root / f"{layout}-{seed}-{alpha}",
            resume=False,
            progress=False,
        )
        for seed, alpha in enumerate(alphas)
    ]
    PopulationTrainer(trainers, layout=layout).run(max_steps=1)  # type: ignore[arg-type]
    return [dict(t.model.named_parameters()) for t in trainers]


@pytest.mark.integration  # trains
def test_a_stack_takes_each_networks_own_term(tiny_data: PreparedData, tmp_path: Path) -> None:
    """The stacked layout (the GPU's) adds to each network's step its own alpha's term, as
    the loop layout (each network's own Trainer) does. One SGD step with the term minus the
    same step without it is lr x alpha x the term's gradient, whatever the rest of the step:
    the stack's grouped convolutions round the cross-entropy's gradient otherwise than the
    single networks do, and that part cancels."""
    alphas = (20.0, -20.0, 0.0)
    moved = {}
    for layout in ("stacked", "loop"):
        pushed = _one_step(tiny_data, tmp_path, layout, alphas)
        plain = _one_step(tiny_data, tmp_path / "plain", layout, (0.0, 0.0, 0.0))
        moved[layout] = [
            {n: p.detach() - q[n].detach() for n, p in a.items()}
            for a, q in zip(pushed, plain, strict=True)
        ]
    for k, (a, b) in enumerate(zip(moved["stacked"], moved["loop"], strict=True)):
        assert float(a["layer1.weight"].abs().max()) > (1e-6 if alphas[k] else -1)
        for name, delta in a.items():
            torch.testing.assert_close(delta, b[name], rtol=1e-3, atol=1e-6, msg=name)
    assert all(float(d.abs().max()) == 0.0 for d in moved["stacked"][2].values())


@pytest.mark.integration  # `orisel train --select-regs` end to end
def test_the_command_line_trains_one_network_per_alpha(
    python_archive: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from orisel.client.cli import main

    out = tmp_path / "runs"
    base = ["train", "--data", str(python_archive), "--val-size", "50", "--epochs", "1"]
    base += ["--device", "cpu", "-q", "--cache-dir", str(tmp_path / "cache")]
    grid = ["--population", "--seeds", "0", "--select-regs", "0,5", "--select-layers", "layer1"]
    assert main([*base, *grid, "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["cnn7-c0-s0", "cnn7-c0-s0-a5"]
    config = json.loads((out / "cnn7-c0-s0-a5" / "manifest.json").read_text())["config"]
    assert (config["select_reg"], config["select_layers"]) == (5.0, ["layer1"])
    capsys.readouterr()
    assert main([*base, "--select-reg", "500", "--out", str(tmp_path / "x")]) == 2
    assert "--select-reg" in capsys.readouterr().err
    assert main([*base, "--select-regs", "1", "--out", str(tmp_path / "y")]) == 2
    assert main([*base, *grid[:-2], "--select-regs", "1,x", "--out", str(tmp_path / "z")]) == 2
    assert "--select-regs" in capsys.readouterr().err
