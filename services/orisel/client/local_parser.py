"""The parsers of the `orisel` commands that run here (client/local.py, client/train.py):
one subcommand each, most flags generated from the config models the services validate."""

from __future__ import annotations

import argparse
from pathlib import Path

from orisel.client.args import add_model_fields, comma_list
from orisel.client.local import (
    cmd_ablate,
    cmd_data_download,
    cmd_data_info,
    cmd_extract,
    cmd_invariance,
    cmd_layers,
    cmd_models,
    cmd_paper_report,
    cmd_report,
    cmd_trajectory,
    cmd_tune,
)
from orisel.client.train import cmd_train
from orisel.data.prepare import SplitSpec


def _scored_network_args(parser: argparse.ArgumentParser) -> None:
    """A network, and the `orisel tune` output whose indices order its units."""
    _network_args(parser)
    parser.add_argument(
        "--scores",
        type=Path,
        required=True,
        help="the output folder of `orisel tune` whose indices order the units",
    )
    parser.add_argument(
        "--allow-mismatch",
        action="store_true",
        help="use --scores computed on another checkpoint than the one analysed",
    )


def _network_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--checkpoint", type=Path, help="an orisel checkpoint (e.g. runs/x/best.pt)"
    )
    parser.add_argument(
        "--model",
        help="instead of a checkpoint: a torchvision model name (e.g. vgg16), or your own: "
        "path/to/file.py:ClassName (--weights a state-dict file), a torch.export archive "
        "(.pt2, dynamic batch) or a TorchScript archive (.ts/.pt); pixels in [0, 1]",
    )
    parser.add_argument(
        "--weights", help="torchvision weights name (DEFAULT, IMAGENET1K_V1) or file"
    )
    parser.add_argument(
        "--download", action="store_true", help="allow fetching torchvision weights"
    )
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda[:N] (default: auto)")
    parser.add_argument(
        "--input-size", type=int, help="input pixels of a --model network (default: 224)"
    )
    parser.add_argument(
        "--output",
        help="for a --model network that returns several outputs: the dict key or tuple "
        "index of its logits",
    )
    parser.add_argument(
        "--test-subset", type=int, help="use a stratified subset of the test images"
    )
    parser.add_argument(
        "--class-map",
        type=Path,
        help="for an ImageFolder --data: which network output each folder class is, a JSON "
        'file {"<class>": <output index>} or a text file of the network\'s class names in '
        "output order, one per line (default: the weights' class names, else the sorted "
        "folder order when the folder holds as many classes as the network has outputs)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        required=True,
        help="output folder: new, empty, or an earlier orisel output with --force",
    )
    parser.add_argument(
        "--force", action="store_true", help="replace --out if it is an earlier orisel output"
    )


def add_local_commands(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    """The local commands, on the `orisel` parser."""
    from orisel.training.config import TrainConfig

    data_src = argparse.ArgumentParser(add_help=False)
    data_src.add_argument(
        "--data",
        type=Path,
        help="CIFAR-10 archive or folder (python or ImageFolder layout) for networks orisel "
        "trained; for any other network an ImageFolder tree of test images, <root>/<class>/"
        "<image> (default: $ORISEL_DATA)",
    )
    data_src.add_argument(
        "--cache-dir", type=Path, help="decoded data cache (default: $ORISEL_CACHE_DIR)"
    )
    data = sub.add_parser("data", help="inspect, cache or download data sets")
    data_sub = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    info = data_sub.add_parser(
        "info",
        parents=[common, data_src],
        help="decode (once, then cached) and describe a data set",
    )
    info.set_defaults(func=cmd_data_info)
    dl = data_sub.add_parser(
        "download", parents=[common], help="download the official CIFAR-10 (needs a network)"
    )
    dl.add_argument("--root", required=True, help="folder to download into")
    dl.set_defaults(func=cmd_data_download)

    models = sub.add_parser("models", parents=[common], help="list the models orisel can build")
    models.set_defaults(func=cmd_models)

    layers = sub.add_parser(
        "layers",
        parents=[common],
        help="the layers a network is analysed at by default (--all: every module call)",
        description="Build the network, run it once on a blank image and list its default "
        "layers (the family's: ResNet blocks, VGG's ReLUs and pools, ViT blocks, the blocks "
        "of other torchvision models, every activation otherwise) with their output shapes; "
        "--all lists every module call, each a valid --layers name.",
    )
    layers.add_argument(
        "model",
        help="a torchvision model name, path/to/file.py:ClassName, or a torch.export (.pt2) "
        "or TorchScript (.ts) archive",
    )
    layers.add_argument("--weights", help="torchvision weights name or state-dict file")
    layers.add_argument("--download", action="store_true", help="allow fetching weights")
    layers.add_argument("--device", default="cpu", help="cpu (default) or cuda[:N]")
    layers.add_argument("--input-size", type=int, help="input pixels (default: 224)")
    layers.add_argument("--output", help="dict key or tuple index of the logits")
    layers.add_argument("--all", action="store_true", help="every module call, not the defaults")
    layers.set_defaults(func=cmd_layers)

    train = sub.add_parser(
        "train",
        parents=[common, data_src],
        help="train a model with checkpoints over time",
        description="Train with the paper's recipe by default (cnn7, Adam 1e-3, batch 32, "
        "200 epochs, best validation loss kept). Every flag overrides one config field.",
    )
    train.add_argument("--out", type=Path, help="run folder (default: $ORISEL_RUNS_DIR/<name>)")
    train.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out from its last checkpoint (start it if there is none)",
    )
    train.add_argument(
        "--max-steps", type=int, help="stop once this global step is reached (a training segment)"
    )
    train.add_argument(
        "--population",
        action="store_true",
        help="train the grid --label-corruptions x --seeds x --select-regs as one stacked model "
        "(cnn7), each network in --out/cnn7-c<corruption>-s<seed>[-a<alpha>]",
    )
    train.add_argument("--label-corruptions", type=comma_list, help="with --population")
    train.add_argument("--seeds", type=comma_list, help="with --population")
    train.add_argument(
        "--select-regs", type=comma_list, help="with --population: one alpha per network"
    )
    add_model_fields(train, TrainConfig, skip={"data"})
    add_model_fields(train, SplitSpec, skip=set())
    train.set_defaults(func=cmd_train)

    from orisel.scoring.spec import TuneSpec

    tune = sub.add_parser(
        "tune",
        parents=[common, data_src],
        help="orientation and class selectivity of every unit",
        description="Present gratings and bars, score every unit (OSI, gOSI, preference, range, "
        "bandwidth, permutation p-value against shuffled stimuli) and, with --data, class "
        "selectivity on the test images. Writes units.csv|parquet, summary.json and plots.",
    )
    _network_args(tune)
    tune.add_argument(
        "--responses",
        type=Path,
        help="score the activations an `orisel extract` wrote to this folder instead of "
        "running the network (no --checkpoint/--model); its stimuli, layers and grid are "
        "the defaults",
    )
    add_model_fields(tune, TuneSpec, skip=set())
    tune.set_defaults(func=cmd_tune)

    from orisel.extraction.spec import ExtractSpec

    extract = sub.add_parser(
        "extract",
        parents=[common, data_src],
        help="a network's responses to the stimuli (and test images), stored for scoring",
        description="Run the forward passes `orisel tune` needs once: each layer's responses "
        "to gratings and bars and, with --data, to the test images, written to --out as "
        "responses.npz and summary.json (docs/tables.md), named by the sha256 of what "
        "determines them. `orisel tune --responses OUT` scores them with any statistics "
        "settings, with no forward pass.",
    )
    _network_args(extract)
    add_model_fields(extract, ExtractSpec, skip={"rectify"})
    extract.set_defaults(func=cmd_extract)

    traj = sub.add_parser(
        "trajectory",
        parents=[common],
        help="tune every checkpoint of a training run: selectivity against epoch and accuracy",
        description="Score every checkpoint a run's manifest lists (as `orisel tune` does) and "
        "write one table, trajectory.csv (epoch, step, stimulus, layer, fraction selective, mean "
        "and median gOSI, the null's mean, dead units, and the run's train/validation/test "
        "accuracy at that checkpoint), and trajectory.png.",
    )
    traj.add_argument("--run", type=Path, required=True, help="a training run folder")
    traj.add_argument("--out", type=Path, required=True, help="output folder (new or empty)")
    traj.add_argument("--force", action="store_true", help="replace an earlier orisel output")
    traj.add_argument("--device", default="auto", help="auto, cpu or cuda[:N] (default: auto)")
    traj.add_argument(
        "--epochs",
        type=comma_list,
        help="tune only the checkpoints at these epochs (for example 0,0.5,1,2,5,10); "
        "default every checkpoint",
    )
    traj.add_argument(
        "--activations",
        type=Path,
        help="keep each checkpoint's activations in this folder (by the sha256 of what "
        "determines them) and score from them: a later trajectory of the run with other "
        "statistics settings runs no forward pass",
    )
    add_model_fields(traj, TuneSpec, skip=set())
    traj.set_defaults(func=cmd_trajectory)

    from orisel.ablation.spec import AblateSpec, InvarianceSpec

    ablate = sub.add_parser(
        "ablate",
        parents=[common, data_src],
        help="ablation curves and the paper's median split",
        description="Silence units layer by layer: cumulatively by each index (descending and "
        "ascending) and at random, and the top vs bottom 50% by each index. Reports test "
        "accuracy (overall and per class) and the per-image cross-entropy increase ± SEM.",
    )
    _scored_network_args(ablate)
    add_model_fields(ablate, AblateSpec, skip=set())
    ablate.set_defaults(func=cmd_ablate)

    inv = sub.add_parser(
        "invariance",
        parents=[common, data_src],
        help="shift-invariance with and without ablation",
        description="Correlation of higher layers' pooled responses to shifted test images, and "
        "prediction consistency, intact and with the most / least selective lower-layer units "
        "ablated, against random ablations of the same size.",
    )
    _scored_network_args(inv)
    add_model_fields(inv, InvarianceSpec, skip=set())
    inv.set_defaults(func=cmd_invariance)

    report = sub.add_parser(
        "report",
        parents=[common],
        help="a Markdown report of one analysis folder",
        description="Collect RUN/train (a training run), RUN/tune, RUN/ablate and RUN/invariance "
        "into one Markdown report with their figures; missing parts are skipped.",
    )
    report.add_argument("--run", type=Path, required=True, help="the analysis folder")
    report.add_argument("--out", type=Path, help="report path (default: RUN/report.md)")
    report.add_argument(
        "--force", action="store_true", help="replace --out if it is an earlier orisel report"
    )
    report.set_defaults(func=cmd_report)

    pr = sub.add_parser(
        "paper-report",
        parents=[common],
        help="the C1-C5 claims report of many analysed networks",
        description="Collect an analysis folder (<variant>/manifest.json, <variant>/best/"
        "{tune,ablate,invariance}, <variant>/trajectory/*) into OUT with plots in OUT's stem "
        "folder and the numbers in <stem>/data.json; or re-render from that data.json.",
    )
    src = pr.add_mutually_exclusive_group(required=True)
    src.add_argument("--analysis", type=Path, help="the analysis folder")
    src.add_argument("--from-data", type=Path, help="a data.json written by an earlier run")
    pr.add_argument("--out", type=Path, required=True, help="report path, e.g. docs/results/x.md")
    pr.add_argument("--preface", type=Path, help="markdown placed before the claims table")
    pr.add_argument(
        "--memorize",
        type=Path,
        help="with --analysis: the analysis folder of networks trained to fit their labels "
        "(no augmentation), reported beside the population as Morcos et al.'s regime",
    )
    pr.set_defaults(func=cmd_paper_report)
