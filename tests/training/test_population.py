"""A population trained as one stacked model equals its networks trained one by one: the
same batches, labels and augmentations for network k as for the single run of its spec, the
same checkpoints, weights within float tolerance, resumable alone or together."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from orisel.data.prepare import PreparedData, SplitSpec, prepare
from orisel.data.sources import load_cifar10
from orisel.kernel.errors import InvalidArgument
from orisel.models.checkpoint import list_checkpoints, load_checkpoint
from orisel.models.cnn7 import CNN7
from orisel.models.stacked import StackedCNN7
from orisel.training.loop import Trainer
from orisel.training.population import PopulationTrainer
from tests.training.conftest import SPEC, tiny_config

# (seed, label corruption): different initialisations, orders, augmentations and labels.
VARIANTS = ((0, 0.0), (1, 0.0), (2, 0.5))


@pytest.fixture(scope="module")
def datasets(python_archive: Path) -> dict[float, PreparedData]:
    ds = load_cifar10(python_archive)
    return {
        c: prepare(ds, SplitSpec(val_size=SPEC.val_size, label_corruption=c))
        for c in {c for _, c in VARIANTS}
    }


def _open(
    datasets: dict[float, PreparedData],
    c: float,
    run: Path,
    seed: int,
    resume: bool = False,
    **cfg: object,
) -> Trainer:
    """Network (seed, label corruption c), its config naming the corruption its data has."""
    spec = SplitSpec(val_size=SPEC.val_size, label_corruption=c)
    config = tiny_config(seed=seed, data=spec, **cfg)
    return Trainer.open(config, datasets[c], run, resume=resume, progress=False)


def test_the_stacked_forward_is_each_networks_forward() -> None:
    torch.manual_seed(0)
    nets = [CNN7() for _ in range(3)]
    stacked = StackedCNN7(nets)
    x = torch.randn(3, 5, 3, 32, 32)
    for mode in ("eval", "train"):
        for net in nets:
            getattr(net, mode)()
        getattr(stacked, mode)()
        want = torch.stack([net(x[k]) for k, net in enumerate(nets)])
        torch.testing.assert_close(stacked(x), want, rtol=1e-5, atol=1e-5)
    for k, net in enumerate(nets):  # the running statistics moved exactly as each network's
        for name, buf in net.named_buffers():
            torch.testing.assert_close(stacked.t(name)[k], buf, rtol=1e-5, atol=1e-6)


def _recorded(monkeypatch: pytest.MonkeyPatch) -> tuple[list, list]:  # type: ignore[type-arg]
    """Every batch the single trainers and the stack train on, as (x, y)."""
    singles: list = []  # type: ignore[type-arg]
    stacks: list = []  # type: ignore[type-arg]
    single_step, stack_step = Trainer.train_step, PopulationTrainer.step

    def record_single(self: Trainer, x: torch.Tensor, y: torch.Tensor, step: int) -> object:
        singles.append((self.cfg.seed, x.clone(), y.clone()))
        return single_step(self, x, y, step)

    def record_stack(
        self: PopulationTrainer, x: torch.Tensor, y: torch.Tensor, step: int
    ) -> object:
        stacks.append((x.clone(), y.clone()))
        return stack_step(self, x, y, step)

    monkeypatch.setattr(Trainer, "train_step", record_single)
    monkeypatch.setattr(PopulationTrainer, "step", record_stack)
    return singles, stacks


@pytest.mark.integration  # trains
def test_network_k_of_a_stack_matches_its_single_run(
    datasets: dict[float, PreparedData], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    singles_seen, stack_seen = _recorded(monkeypatch)
    for seed, c in VARIANTS:
        _open(datasets, c, tmp_path / f"single-{seed}", seed, epochs=1).run()
    population = PopulationTrainer(
        [_open(datasets, c, tmp_path / f"pop-{seed}", seed, epochs=1) for seed, c in VARIANTS],
        layout="stacked",
    )
    population.run()
    # Network k trained on exactly the images, labels (corrupted as its spec says) and
    # augmentations of its single run, batch by batch, bit for bit.
    for k, (seed, _) in enumerate(VARIANTS):
        mine = [(x, y) for s, x, y in singles_seen if s == seed]
        assert len(mine) == len(stack_seen) == 8
        for (x, y), (xs, ys) in zip(mine, stack_seen, strict=True):
            assert torch.equal(xs[k], x)
            assert torch.equal(ys[k], y)
    for (seed, _), k in zip(VARIANTS, range(len(VARIANTS)), strict=True):
        a, b = tmp_path / f"single-{seed}", tmp_path / f"pop-{seed}"
        assert [p.name for p in list_checkpoints(a)] == [p.name for p in list_checkpoints(b)]
        m1 = json.loads((a / "manifest.json").read_text())
        m2 = json.loads((b / "manifest.json").read_text())
        assert m2["config"] == m1["config"]
        assert m2["data"]["sha256"] == m1["data"]["sha256"]
        # Float32 training is chaotic under Adam (a gradient within rounding of zero flips the
        # sign of a whole lr-sized step), so after an epoch the two runs agree as two float32
        # runs can: accuracy within a few images of 50, far inside the spread between seeds.
        for h1, h2 in zip(m1["history"], m2["history"], strict=True):
            assert h1["step"] == h2["step"]
            for split in ("validation", "test"):
                assert (
                    abs(h2["metrics"][split]["accuracy"] - h1["metrics"][split]["accuracy"]) <= 0.08
                )
        assert population.trainers[k].state.step == 8


def test_each_networks_gradient_is_its_own(
    datasets: dict[float, PreparedData], tmp_path: Path
) -> None:
    """One step's gradients against a float64 reference of each network alone: the stack
    computes each network's own gradient (to float32 rounding), nothing leaks between them."""
    import copy

    from orisel.training.batches import epoch_permutation

    trainers = [_open(datasets, c, tmp_path / f"g-{seed}", seed) for seed, c in VARIANTS]
    population = PopulationTrainer(trainers, layout="stacked")
    perms = torch.stack([epoch_permutation(t.cfg.seed, 0, len(t.train_data)) for t in trainers])
    x, y = population._batch(1, 0, perms)
    population.model.train()
    logits = population.model(x)
    n, b, k = logits.shape
    per_image = torch.nn.functional.cross_entropy(
        logits.reshape(n * b, k), y.reshape(n * b), reduction="none"
    )
    per_image.view(n, b).mean(1).sum().backward()
    for i, t in enumerate(trainers):
        reference = copy.deepcopy(t.model).double().train()
        torch.nn.functional.cross_entropy(reference(x[i].double()), y[i]).backward()
        for name, p in reference.named_parameters():
            stacked = population.model.t(name).grad
            assert p.grad is not None
            assert stacked is not None
            want, got = p.grad.float(), stacked[i]
            assert float((got - want).abs().max()) <= 1e-4 * float(want.abs().max()), name
    # One Adam step moves each weight by at most lr: the stack's first step is each network's.
    population.optimizer.step()
    for i, t in enumerate(trainers):
        single = copy.deepcopy(t.model).train()
        opt = torch.optim.Adam(single.parameters(), lr=t.cfg.lr)
        torch.nn.functional.cross_entropy(single(x[i]), y[i]).backward()
        opt.step()
        flipped = total = 0
        for name, p in single.named_parameters():
            diff = (population.model.t(name)[i].detach() - p.detach()).abs()
            assert float(diff.max()) <= 2 * t.cfg.lr + 1e-6, name
            flipped += int((diff > 1e-5).sum())
            total += diff.numel()
        assert flipped / total < 1e-3  # weights whose gradient is within rounding of zero


def test_a_step_draws_every_networks_batch_in_one_gather_as_each_draws_its_own(
    datasets: dict[float, PreparedData], tmp_path: Path
) -> None:
    """Networks that share their images (a population differs in labels and seeds) draw a
    step's batches in one gather: bit-identical to each network drawing its own, labels
    included, with a different batch for every network."""
    from orisel.training.batches import epoch_permutation

    trainers = [_open(datasets, c, tmp_path / f"b-{seed}", seed) for seed, c in VARIANTS]
    population = PopulationTrainer(trainers, layout="stacked")
    assert population.shared is not None
    perms = torch.stack([epoch_permutation(t.cfg.seed, 3, len(t.train_data)) for t in trainers])
    together = population._batch(5, 3, perms)
    population.shared = None
    apart = population._batch(5, 3, perms)
    assert torch.equal(together[0], apart[0])
    assert torch.equal(together[1], apart[1])
    for k, t in enumerate(trainers):
        idx = perms[k, 4 * t.cfg.batch_size : 5 * t.cfg.batch_size]
        assert torch.equal(together[1][k], t.train_data.labels[idx])
    assert not torch.equal(together[0][0], together[0][1])


@pytest.mark.integration  # trains nine networks, some twice
def test_a_population_resumes_to_the_same_end(
    datasets: dict[float, PreparedData], tmp_path: Path
) -> None:
    def runs(prefix: str, resume: bool = False) -> list[Trainer]:
        return [
            _open(datasets, c, tmp_path / f"{prefix}-{seed}", seed, resume=resume)
            for seed, c in VARIANTS
        ]

    PopulationTrainer(runs("whole"), layout="stacked").run()
    PopulationTrainer(runs("parts"), layout="stacked").run(max_steps=6)
    # A worker killed between two networks' checkpoints: network 0 got two steps further.
    _open(datasets, VARIANTS[0][1], tmp_path / f"parts-{VARIANTS[0][0]}", 0, resume=True).run(
        max_steps=8
    )
    resumed = PopulationTrainer(runs("parts", resume=True), layout="stacked")
    assert {t.state.step for t in resumed.trainers} == {6}  # back to the common checkpoint
    assert all(h["step"] <= 6 for t in resumed.trainers for h in t.state.history)
    resumed.run()
    for seed, _ in VARIANTS:
        a = load_checkpoint(tmp_path / f"whole-{seed}" / "best.pt")
        b = load_checkpoint(tmp_path / f"parts-{seed}" / "best.pt")
        assert a["step"] == b["step"]
        for name, value in a["model"].items():
            torch.testing.assert_close(b["model"][name], value, rtol=1e-5, atol=1e-6)


@pytest.mark.integration  # trains six networks
def test_the_loop_layout_is_bit_identical_to_single_runs(
    datasets: dict[float, PreparedData], tmp_path: Path
) -> None:
    """On a CPU the trainer runs the networks one after another in the same loop (the faster
    layout there): then each network's run is exactly its single run, weight for weight."""
    for seed, c in VARIANTS:
        _open(datasets, c, tmp_path / f"single-{seed}", seed, epochs=1).run()
    population = PopulationTrainer(
        [_open(datasets, c, tmp_path / f"pop-{seed}", seed, epochs=1) for seed, c in VARIANTS]
    )
    assert population.layout == "loop"  # chosen for the CPU
    population.run()
    for seed, _ in VARIANTS:
        a = load_checkpoint(tmp_path / f"single-{seed}" / "best.pt")
        b = load_checkpoint(tmp_path / f"pop-{seed}" / "best.pt")
        for name, value in a["model"].items():
            assert torch.equal(b["model"][name], value), name


def test_networks_that_cannot_share_a_step_are_refused(
    datasets: dict[float, PreparedData], tmp_path: Path
) -> None:
    a = _open(datasets, 0.0, tmp_path / "a", 0)
    b = _open(datasets, 0.0, tmp_path / "b", 1, batch_size=16)
    with pytest.raises(InvalidArgument, match="batch_size"):
        PopulationTrainer([a, b])


@pytest.mark.integration  # `orisel train --population` end to end
def test_the_command_line_trains_a_grid_as_one_population(
    python_archive: Path, tmp_path: Path
) -> None:
    from orisel.client.cli import main

    out = tmp_path / "runs"
    flags = [
        "train",
        "--population",
        "--label-corruptions",
        "0,0.5",
        "--seeds",
        "0,1",
        "--data",
        str(python_archive),
        "--val-size",
        "50",
        "--epochs",
        "1",
        "--device",
        "cpu",
        "--out",
        str(out),
        "-q",
        "--json",
    ]
    assert main(flags) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["cnn7-c0-s0", "cnn7-c0-s1", "cnn7-c0.5-s0", "cnn7-c0.5-s1"]
    for name in names:
        manifest = json.loads((out / name / "manifest.json").read_text())
        assert manifest["status"] == "completed"
        assert manifest["config"]["seed"] == int(name[-1])
        assert manifest["config"]["data"]["label_corruption"] == float(name.split("-")[1][1:])
        assert (out / name / "best.pt").is_file()
    # A network of the population is an ordinary run: it resumes alone.
    assert (
        main(
            [
                "train",
                "--resume",
                "--epochs",
                "2",
                "--data",
                str(python_archive),
                "--device",
                "cpu",
                "--out",
                str(out / "cnn7-c0.5-s1"),
                "-q",
            ]
        )
        == 0
    )
    assert (
        json.loads((out / "cnn7-c0.5-s1" / "manifest.json").read_text())["history"][-1]["epoch"]
        == 2.0
    )


def _kernel_flags() -> tuple[bool, bool, bool, bool]:
    return (
        torch.are_deterministic_algorithms_enabled(),
        torch.backends.cudnn.benchmark,
        torch.backends.cuda.matmul.allow_tf32,
        torch.backends.cudnn.allow_tf32,
    )


@pytest.mark.integration  # trains
def test_kernel_settings_hold_for_the_run_and_are_restored(
    datasets: dict[float, PreparedData], tmp_path: Path
) -> None:
    """A run's deterministic and TF32 settings are in force while it trains and evaluates,
    recorded in its manifest, and undone afterwards (a worker's next task starts clean)."""
    before = _kernel_flags()
    during: list[tuple[bool, bool, bool, bool]] = []
    t = _open(datasets, 0.0, tmp_path / "a", 0, deterministic=True, tf32=True, epochs=1)
    t.on_checkpoint = lambda _entry: during.append(_kernel_flags())
    population = PopulationTrainer([t], layout="stacked")
    population.run(max_steps=2)
    assert during
    assert set(during) == {(True, False, True, True)}
    assert _kernel_flags() == before
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert manifest["config"]["tf32"] is True
    assert manifest["config"]["deterministic"] is True


@pytest.mark.integration  # torch.compile builds C++ kernels: about a minute on two cores
def test_a_compiled_stack_takes_the_eager_steps(
    datasets: dict[float, PreparedData], tmp_path: Path
) -> None:
    """torch.compile changes how the step runs, not what it computes: the first step's
    gradients of a compiled stack are the eager stack's within float32 rounding. Without
    augmentation: a shift filled with edge pixels makes exact ties in max-pooling, which the
    two kernels may break differently. (Weights are not compared: Adam's first step is lr
    times the sign of each gradient, so a gradient within rounding of zero flips 2 x lr.)"""
    grads = {}
    for mode in ("off", "on"):
        trainers = [
            _open(datasets, c, tmp_path / f"{mode}-{seed}", seed, compile=mode, augment=False)
            for seed, c in VARIANTS
        ]
        population = PopulationTrainer(trainers, layout="stacked")
        population.run(max_steps=1)
        grads[mode] = {
            n: p.grad.clone() for n, p in population.model.named_parameters() if p.grad is not None
        }
    for name, value in grads["off"].items():
        scale = value.abs().max().item()
        torch.testing.assert_close(grads["on"][name], value, rtol=1e-3, atol=1e-4 * scale)
    with pytest.raises(InvalidArgument, match="compile"):
        _open(datasets, 0.0, tmp_path / "g", 0, compile="cudagraphs", device="auto")
