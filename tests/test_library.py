"""The Python API, as a researcher uses it: the README's example runs as written, tables
match the command line's files, and importing orisel never imports torch."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import orisel
from orisel.client.cli import main
from orisel.kernel.errors import FailedPrecondition
from orisel.kernel.tables import read_table

ROOT = Path(__file__).resolve().parents[1]
SMALL = {"n_orientations": 4, "n_phases": 2, "n_frequencies": 2, "permutations": 3}


def test_the_readme_example_runs_as_written(capsys: pytest.CaptureFixture[str]) -> None:
    readme = (ROOT / "README.md").read_text()
    (example,) = re.findall(r"```python\n(.*?)```", readme, re.S)
    assert len(example.strip().splitlines()) <= 5
    exec(compile(example.replace("permutations=100", "permutations=5"), "README", "exec"), {})
    printed = capsys.readouterr().out
    assert "layer4.1" in printed  # the mean gOSI of every residual block


def test_the_tutorial_runs_as_written(capsys: pytest.CaptureFixture[str]) -> None:
    tutorial = (ROOT / "docs" / "tutorial.md").read_text()
    (code,) = re.findall(r"```python\n(.*?)```", tutorial, re.S)
    exec(compile(code.replace("permutations=50", "permutations=3"), "tutorial", "exec"), {})
    printed = capsys.readouterr().out
    assert "relu1" in printed
    assert "loss_increase_mean" in printed


def test_importing_orisel_does_not_import_torch() -> None:
    code = "import orisel, sys; assert 'torch' not in sys.modules; print(orisel.__version__)"
    assert subprocess.run([sys.executable, "-c", code], check=True).returncode == 0


def test_tune_table_equals_the_files_it_writes(untrained_checkpoint: Path, tmp_path: Path) -> None:
    net = orisel.load(checkpoint=untrained_checkpoint, device="cpu")
    units = orisel.tune(net, layers=("layer1", "layer2"), out=tmp_path / "t", **SMALL)
    assert isinstance(units, pd.DataFrame)
    assert len(units) == 2 * 2 * 32  # gratings and bars x layers x channels
    written = read_table(tmp_path / "t" / "units.csv")
    np.testing.assert_allclose(units["gosi"].to_numpy(), written["gosi"], rtol=1e-6)
    with pytest.raises(FailedPrecondition, match="--force"):
        orisel.tune(net, layers=("layer1",), out=tmp_path / "t", **SMALL)


@pytest.mark.integration  # `orisel ablate` end to end beside the API
def test_ablate_from_a_table_matches_the_command_line(
    untrained_checkpoint: Path, python_archive: Path, tmp_path: Path
) -> None:
    net = orisel.load(checkpoint=untrained_checkpoint, device="cpu")
    images, labels = orisel.cifar10(python_archive)
    units = orisel.tune(net, layers=("layer1",), stimuli=("gratings",), **SMALL)
    sweep = {
        "layers": ("layer1",),
        "orders": ("gosi",),
        "seeds": (0,),
        "fractions": (0.0, 1.0),
        "random_halves": 5,
    }
    got = orisel.ablate(net, units, images, labels, **sweep)
    curves = got["curves"]
    splits = got["splits"]
    assert list(splits[["layer", "by"]].itertuples(index=False, name=None)) == [("layer1", "gosi")]
    assert splits["top50_n_ablated"].iloc[0] + splits["bottom50_n_ablated"].iloc[0] <= 32
    intact = curves[curves.fraction == 0.0].accuracy.unique()
    assert len(intact) == 1  # no unit ablated: the same accuracy for every order
    csi = orisel.class_selectivity(net, images, labels, layers=("layer1",))
    assert list(csi.columns) == ["layer", "unit", "csi"]
    assert len(csi) == 32
    # The same sweep from the command line, on the same scores, gives the same curves.
    scores = tmp_path / "scores"
    orisel.tune(net, layers=("layer1",), stimuli=("gratings",), out=scores, **SMALL)
    rc = main(
        [
            "ablate",
            "--checkpoint",
            str(untrained_checkpoint),
            "--data",
            str(python_archive),
            "--scores",
            str(scores),
            "--out",
            str(tmp_path / "ab"),
            "--layers",
            "layer1",
            "--orders",
            "gosi",
            "--seeds",
            "0",
            "--fractions",
            "0,1",
            "--random-halves",
            "5",
            "--device",
            "cpu",
            "-q",
        ]
    )
    assert rc == 0
    cli = read_table(tmp_path / "ab" / "curves.csv")
    np.testing.assert_allclose(curves["accuracy"].to_numpy(), cli["accuracy"])


def test_a_model_class_from_a_file(tmp_path: Path) -> None:
    source = tmp_path / "mine.py"
    source.write_text(
        "from torch import nn\n"
        "class Tiny(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.conv = nn.Conv2d(3, 8, 5)\n"
        "        self.act = nn.ReLU()\n"
        "        self.head = nn.Linear(8, 10)\n"
        "    def forward(self, x):\n"
        "        return self.head(self.act(self.conv(x)).mean((2, 3)))\n"
    )
    out = tmp_path / "tune"
    rc = main(
        [
            "tune",
            "--model",
            f"{source}:Tiny",
            "--input-size",
            "32",
            "--out",
            str(out),
            "--stimuli",
            "gratings",
            "--permutations",
            "3",
            "--device",
            "cpu",
            "-q",
        ]
    )
    assert rc == 0
    units = read_table(out / "units.csv")
    assert set(units["layer"].tolist()) == {"act"}
    assert len(units["layer"]) == 8
    assert main(["tune", "--model", f"{source}:Missing", "--out", str(tmp_path / "x"), "-q"]) == 3


@pytest.mark.filterwarnings("ignore::FutureWarning")  # torch.jit's deprecation, on purpose
def test_an_exported_program_and_a_torchscript_file_read_like_the_module(tmp_path: Path) -> None:
    import torch
    from torch import nn

    model = nn.Sequential(nn.Conv2d(3, 6, 5), nn.ReLU(), nn.Conv2d(6, 8, 3), nn.ReLU()).eval()
    x = torch.zeros(2, 3, 32, 32)
    batch = torch.export.Dim("batch")
    program = torch.export.export(model, (x,), dynamic_shapes={"input": {0: batch}})
    torch.export.save(program, tmp_path / "m.pt2")
    out = tmp_path / "tune"
    flags = ["--out", str(out), "--stimuli", "gratings", "--permutations", "3", "-q"]
    assert main(["tune", "--model", str(tmp_path / "m.pt2"), *flags]) == 0  # 32 px from the file
    units = read_table(out / "units.csv")
    assert set(units["layer"].tolist()) == {"1", "3"}  # the ReLUs, named as in the model
    direct = orisel.Network.from_module(model, input_size=32)
    want = orisel.tune(direct, stimuli=("gratings",), permutations=3)
    np.testing.assert_allclose(units["gosi"], want["gosi"].to_numpy(), rtol=1e-5, atol=1e-6)
    static = torch.export.export(model, (x,))
    torch.export.save(static, tmp_path / "static.pt2")
    flags[1] = str(tmp_path / "t2")
    assert main(["tune", "--model", str(tmp_path / "static.pt2"), *flags]) == 4
    # A TorchScript file (traced here) is read layer by layer like the module it came from.
    torch.jit.save(torch.jit.trace(model, x), str(tmp_path / "m.ts"))
    flags[1] = str(tmp_path / "t3")
    assert main(["tune", "--model", str(tmp_path / "m.ts"), "--input-size", "32", *flags]) == 0
    scripted = read_table(tmp_path / "t3" / "units.csv")
    assert set(scripted["layer"].tolist()) == {"1", "3"}
    np.testing.assert_allclose(scripted["gosi"], want["gosi"].to_numpy(), rtol=1e-5, atol=1e-6)
    (tmp_path / "junk.ts").write_bytes(b"PK not an archive")
    flags[1] = str(tmp_path / "t4")
    assert main(["tune", "--model", str(tmp_path / "junk.ts"), *flags]) == 4


def test_the_command_line_imports_no_torch() -> None:
    """`orisel --help`, `orisel submit ...`, `orisel jobs`: a front end starts without torch."""
    import subprocess
    import sys

    code = "import sys, orisel.client.cli; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_cifar10_is_decoded_once_into_the_command_lines_cache(
    python_archive: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from orisel.data import sources
    from orisel.data.sources import load_cifar10
    from orisel.runtime.settings import get_settings

    monkeypatch.setenv("ORISEL_CACHE_DIR", str(tmp_path / "cache"))
    get_settings.cache_clear()
    try:
        images, labels = orisel.cifar10(python_archive)
        assert len(list((tmp_path / "cache").glob("cifar10-*.npz"))) == 1
        # The command line reads the very file: the same cache, keyed by the archive.
        assert load_cifar10(python_archive, tmp_path / "cache").test_images.shape == images.shape

        def no_decoding(*_: object) -> None:
            raise AssertionError("decoded again instead of read from the cache")

        monkeypatch.setattr(sources, "_load_python", no_decoding)
        again, again_labels = orisel.cifar10(python_archive)
        np.testing.assert_array_equal(again, images)
        np.testing.assert_array_equal(again_labels, labels)
        monkeypatch.undo()
        orisel.cifar10(python_archive, "train", cache_dir=tmp_path / "elsewhere")
        assert len(list((tmp_path / "elsewhere").glob("cifar10-*.npz"))) == 1
    finally:
        get_settings.cache_clear()


def test_progress_bars_are_drawn_unless_switched_off(
    untrained_checkpoint: Path, python_archive: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    net = orisel.load(checkpoint=untrained_checkpoint, device="cpu")
    grid = {k: v for k, v in SMALL.items() if k != "permutations"}
    units = orisel.tune(net, layers=("layer1",), stimuli=("gratings",), **SMALL)
    assert "scoring gratings" in capsys.readouterr().err
    orisel.responses(net, layers=("layer1",), **grid)
    assert "responses" in capsys.readouterr().err
    images, labels = orisel.cifar10(python_archive)
    sweep = {"layers": ("layer1",), "orders": ("gosi",), "seeds": (0,), "fractions": (0.0,)}
    orisel.ablate(net, units, images[:20], labels[:20], random_halves=0, **sweep)
    assert "ablation sweep" in capsys.readouterr().err
    shifts = {"layers": ("layer2",), "ablate_layers": ("layer1",), "seeds": (0,)}
    orisel.invariance(net, units, images[:20], **shifts)
    assert "shift-invariance" in capsys.readouterr().err
    orisel.invariance(net, units, images[:20], progress=False, **shifts)
    orisel.tune(net, layers=("layer1",), stimuli=("gratings",), progress=False, **SMALL)
    orisel.responses(net, layers=("layer1",), progress=False, **grid)
    orisel.ablate(net, units, images[:20], labels[:20], random_halves=0, progress=False, **sweep)
    assert capsys.readouterr().err == ""


def test_summaries_of_a_user_model_record_its_weights_checksum(tmp_path: Path) -> None:
    import hashlib

    import torch
    from torch import nn

    torch.manual_seed(0)
    module = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.LazyLinear(2))
    module(torch.zeros(1, 3, 8, 8))  # sizes the lazy head
    # The checksum's definition, computed here: name, dtype, shape, then bytes per tensor.
    want = hashlib.sha256()
    for name, t in module.state_dict().items():
        want.update(f"{name}\0{t.dtype}\0{tuple(t.shape)}\0".encode())
        want.update(t.contiguous().numpy().tobytes())
    net = orisel.Network.from_module(module, input_size=8)
    orisel.tune(net, stimuli=("gratings",), out=tmp_path / "t", progress=False, **SMALL)
    summary = json.loads((tmp_path / "t" / "summary.json").read_text())
    assert summary["network"]["weights_sha256"] == want.hexdigest()
    # From the command line, the weights file's own checksum too.
    source = tmp_path / "mine.py"
    source.write_text(
        "from torch import nn\n"
        "class Tiny(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.conv, self.act, self.head = nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Linear(4, 2)\n"
        "    def forward(self, x):\n"
        "        return self.head(self.act(self.conv(x)).mean((2, 3)))\n"
    )
    weights = tmp_path / "tiny.pt"
    tiny = nn.Module()
    tiny.conv, tiny.act, tiny.head = nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Linear(4, 2)
    torch.save(tiny.state_dict(), weights)
    grid = ["--n-orientations", "4", "--n-phases", "2", "--n-frequencies", "2"]
    flags = ["--input-size", "8", "--stimuli", "gratings", "--permutations", "0", *grid, "-q"]
    out = tmp_path / "cli"
    model = ["--model", f"{source}:Tiny", "--weights", str(weights)]
    assert main(["tune", *model, *flags, "--out", str(out)]) == 0
    network = json.loads((out / "summary.json").read_text())["network"]
    assert network["weights_file_sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert len(network["weights_sha256"]) == 64
