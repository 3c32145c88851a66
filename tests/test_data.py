import datasets
import numpy as np
import pytest
from tinydata import make_image_folder, make_npz
from PIL import Image

from synthxray.data import DataError, is_grayscale, load_dataset, resize_center_crop, with_image_transform


def test_image_folder(tmp_path):
    root = make_image_folder(tmp_path / "train", per_class=3)
    ds = load_dataset(root)
    assert len(ds) == 6
    assert ds.features["label"].names == ["NORMAL", "PNEUMONIA"]
    assert sorted(ds["label"]) == [0, 0, 0, 1, 1, 1]
    assert is_grayscale(ds)  # RGB JPEGs with grayscale content


def test_split_subfolder_is_picked(tmp_path):
    make_image_folder(tmp_path / "chest" / "train", per_class=2)
    make_image_folder(tmp_path / "chest" / "test", per_class=1)
    assert len(load_dataset(tmp_path / "chest", split="test")) == 2


def test_rgb_colour_is_not_grayscale(tmp_path):
    for c in ("a", "b"):
        (tmp_path / c).mkdir()
        Image.fromarray(np.random.default_rng(0).integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(tmp_path / c / "x.png")
    assert not is_grayscale(load_dataset(tmp_path))


def test_npz_split_and_names(tmp_path):
    path = make_npz(tmp_path / "pneumoniamnist.npz", n=8)
    ds = load_dataset(path, split="val")
    assert len(ds) == 2 and ds[0]["image"].mode == "L"
    # medmnist's own class names for a known MedMNIST file name
    assert ds.features["label"].names == ["normal", "pneumonia"]


def test_save_to_disk_and_dataset_roundtrip(tmp_path, tiny_npz):
    ds = load_dataset(tiny_npz)
    ds.save_to_disk(tmp_path / "saved")
    back = load_dataset(tmp_path / "saved")
    assert back["label"] == ds["label"]
    dd = datasets.DatasetDict({"train": ds})
    dd.save_to_disk(tmp_path / "dd")
    assert len(load_dataset(tmp_path / "dd", split="train")) == len(ds)
    with pytest.raises(DataError, match="no split 'test'"):
        load_dataset(tmp_path / "dd", split="test")


def test_columns_are_normalised():
    feats = datasets.Features({"img": datasets.Image(), "target": datasets.Value("string")})
    ds = datasets.Dataset.from_dict({"img": [Image.new("L", (4, 4))] * 2, "target": ["b", "a"]}, features=feats)
    out = load_dataset(ds)
    assert set(out.column_names) == {"image", "label"}
    assert out.features["label"].names == ["a", "b"]


def test_empty_class_folder_names_it(tmp_path):
    make_image_folder(tmp_path, per_class=1)
    (tmp_path / "EMPTY").mkdir()
    with pytest.raises(DataError, match="EMPTY.*holds no images"):
        load_dataset(tmp_path)


def test_unreadable_image_names_file(tmp_path):
    make_image_folder(tmp_path, per_class=1)
    (tmp_path / "NORMAL" / "broken.png").write_bytes(b"not an image")
    with pytest.raises(DataError, match="broken.png: unreadable image"):
        load_dataset(tmp_path)


def test_npz_missing_keys_names_them(tmp_path):
    np.savez(tmp_path / "bad.npz", x=np.zeros((2, 4, 4)))
    with pytest.raises(DataError, match=r"missing key\(s\) \['train_images', 'train_labels'\].*\['x'\]"):
        load_dataset(tmp_path / "bad.npz")


def test_npz_empty_split_names_the_split_and_the_splits_that_have_images(tmp_path):
    empty, some = np.zeros((0, 4, 4), np.uint8), np.zeros((3, 4, 4), np.uint8)
    np.savez(tmp_path / "e.npz", train_images=empty, train_labels=np.zeros((0, 1)), test_images=some,
             test_labels=np.array([[0], [1], [0]]))
    with pytest.raises(DataError, match=r"e.npz: split 'train' holds no images .*splits with images: \['test'\]"):
        load_dataset(tmp_path / "e.npz")
    assert len(load_dataset(tmp_path / "e.npz", split="test")) == 3  # the other split still loads, 2 classes


def test_missing_path_is_clear(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load_dataset(str(tmp_path / "nope" / "deeper" / "x"))


def test_resize_center_crop_keeps_aspect():
    im = Image.new("L", (200, 100))
    im.paste(255, (50, 0, 150, 100))  # a centred white square
    out = resize_center_crop(im, 32)
    assert out.size == (32, 32)
    arr = np.asarray(out)
    assert arr.mean() > 240  # the crop is the undistorted centre square


def test_transform_shapes_and_range(tiny_npz):
    ds = with_image_transform(load_dataset(tiny_npz), 16, 1)
    x = ds[0]["pixel_values"]
    assert tuple(x.shape) == (1, 16, 16) and -1.0 <= float(x.min()) and float(x.max()) <= 1.0
    ds3 = with_image_transform(load_dataset(tiny_npz), 16, 3)
    assert tuple(ds3[0]["pixel_values"].shape) == (3, 16, 16)
