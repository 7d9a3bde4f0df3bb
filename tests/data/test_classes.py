"""An image folder's classes are matched to the network's outputs by name, or refused: the
sorted folder index is the output index only when the folder holds every class."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from orisel.data.classes import match_classes, read_class_map
from orisel.kernel.errors import DataError, InvalidArgument

FOLDER = ("cat", "dog", "ship")  # sorted, as the folder's sub-folders are read


def test_a_few_classes_of_a_larger_network_without_a_map_are_refused() -> None:
    with pytest.raises(InvalidArgument, match=r"class_map.*3 classes.*1000 outputs.*--class-map"):
        match_classes(FOLDER, 1000)


def test_the_networks_names_in_output_order_place_each_class() -> None:
    names = ["airplane", "ship", "bird", "Cat", "dog_breed", "dog"]
    got = match_classes(FOLDER, 6, class_map=names)
    # cat is "Cat" (index 3; case ignored), dog index 5 (not dog_breed), ship index 1.
    np.testing.assert_array_equal(got.outputs, [3, 5, 1])
    assert got.matched_by == "class map"
    assert got.of(FOLDER) == {"cat": 3, "dog": 5, "ship": 1}


def test_an_index_map_is_taken_as_given_and_checked() -> None:
    got = match_classes(FOLDER, 10, class_map={"cat": 3, "dog": 5, "ship": 8})
    np.testing.assert_array_equal(got.outputs, [3, 5, 8])
    with pytest.raises(InvalidArgument, match=r"missing: \['ship'\]"):
        match_classes(FOLDER, 10, class_map={"cat": 3, "dog": 5})
    with pytest.raises(InvalidArgument, match=r"\[0, 10\)"):
        match_classes(FOLDER, 10, class_map={"cat": 3, "dog": 5, "ship": 10})
    with pytest.raises(InvalidArgument, match="a different output"):
        match_classes(FOLDER, 10, class_map={"cat": 3, "dog": 3, "ship": 4})


def test_the_weights_class_names_match_a_subset() -> None:
    names = ["tench", "ship", "dog", "cat"]
    got = match_classes(FOLDER, 4, network_names=names)
    np.testing.assert_array_equal(got.outputs, [3, 2, 1])
    assert got.matched_by == "class names"
    with pytest.raises(InvalidArgument, match=r"unmatched: \['ship'\]"):
        match_classes(FOLDER, 5, network_names=["cat", "dog", "frog", "horse", "tench"])


def test_sorted_order_only_when_the_folder_holds_every_output() -> None:
    got = match_classes(FOLDER, 3)
    np.testing.assert_array_equal(got.outputs, [0, 1, 2])
    assert got.matched_by == "sorted folder order"
    # ImageNet's val/<wnid>/ with torchvision's weights: names ("tench") never match wnids,
    # and a folder of all 1000 wnids is in the weights' order when sorted.
    wnids = tuple(f"n{i:08d}" for i in range(4))
    got = match_classes(wnids, 4, network_names=["tench", "goldfish", "shark", "ray"])
    assert got.matched_by == "sorted folder order"
    with pytest.raises(InvalidArgument, match="class_map"):
        match_classes(wnids[:2], 4, network_names=["tench", "goldfish", "shark", "ray"])


def test_a_name_several_outputs_share_is_refused_not_guessed() -> None:
    names = ["crane", "tiger shark", "tiger", "crane", "ship"]  # ImageNet has two cranes
    with pytest.raises(InvalidArgument, match=r"'crane' names outputs \[0, 3\]"):
        match_classes(("crane", "ship"), 5, class_map=names)
    # A whole name wins over another entry's first word.
    np.testing.assert_array_equal(match_classes(("tiger",), 5, class_map=names).outputs, [2])


def test_class_map_files(tmp_path: Path) -> None:
    synsets = tmp_path / "LOC_synset_mapping.txt"
    synsets.write_text("n01440764 tench, Tinca tinca\nn01443537 goldfish, Carassius auratus\n")
    names = read_class_map(synsets)
    got = match_classes(("n01443537",), 2, class_map=names)
    np.testing.assert_array_equal(got.outputs, [1])
    indices = tmp_path / "map.json"
    indices.write_text(json.dumps({"cat": 1, "dog": 0}))
    assert read_class_map(indices) == {"cat": 1, "dog": 0}
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(DataError, match="not valid JSON"):
        read_class_map(tmp_path / "bad.json")
    with pytest.raises(DataError, match="does not exist"):
        read_class_map(tmp_path / "none.txt")
    with pytest.raises(InvalidArgument, match=r"3 class names in output order \(got .2 names"):
        match_classes(FOLDER, 3, class_map=names)
