"""DICOM folders and file -> label tables through load_dataset (files written here with pydicom)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hospitaldata import PATIENT_ID, PATIENT_NAME, make_dicom_folder, ramp, write_dicom
from PIL import Image
from script_loader import load_script

from synthxray import load_dataset
from synthxray.data import DataError
from synthxray.dicom import DicomError, read_dicom


def test_rescale_slope_intercept_then_file_window(tmp_path):
    raw = ramp(24, 4095)
    # HU = 2 * raw - 1000, window centre 0 width 2000: raw 0 -> -1000 (black), raw >= 1000 -> >= 1000 (white)
    out = np.asarray(read_dicom(write_dicom(tmp_path / "ct.dcm", raw, slope=2, intercept=-1000, window=(0, 2000))))
    hu = 2 * raw.astype(float) - 1000
    assert (out[hu <= -1000] == 0).all() and (out[hu >= 999] == 255).all()
    mid = (hu > -900) & (hu < 900)
    assert np.allclose(out[mid], (hu[mid] + 1000.5) / 1999 * 255, atol=1)


def test_window_override_and_ignore_file_window(tmp_path):
    raw = ramp(24, 4095)
    path = write_dicom(tmp_path / "w.dcm", raw, window=(300, 200))
    assert (np.asarray(read_dicom(path)) == 255).mean() > 0.8  # the file's narrow window
    wide = np.asarray(read_dicom(path, window=(0, 4095)))  # the user's window wins
    assert abs(wide.astype(int) - np.round(raw / 4095 * 255)).max() <= 1
    own = np.asarray(read_dicom(path, use_file_window=False))  # min..max of the image
    assert own.min() == 0 and own.max() == 255


def test_monochrome1_is_inverted(tmp_path):
    raw = ramp(24, 4095)
    m2 = np.asarray(read_dicom(write_dicom(tmp_path / "m2.dcm", raw)))
    m1 = np.asarray(read_dicom(write_dicom(tmp_path / "m1.dcm", raw, photometric="MONOCHROME1")))
    assert np.array_equal(m1, 255 - m2)
    assert m1[:, 0].mean() > 240 and m1[:, -1].mean() < 15  # low values are white in MONOCHROME1
    assert np.array_equal(np.asarray(read_dicom(tmp_path / "m1.dcm", invert=False)), m2)


def test_voi_lut_sequence(tmp_path):
    raw = ramp(16, 255)
    out = np.asarray(read_dicom(write_dicom(tmp_path / "lut.dcm", raw, bits_stored=8, voi_lut=(0, [255 - i for i in range(256)]))))
    assert abs(out.astype(int) - (255 - raw.astype(int))).max() <= 1


def test_refusals_name_the_file_and_what_to_do(tmp_path):
    with pytest.raises(DicomError, match=r"multi\.dcm: multi-frame DICOM \(3 frames\) is not supported; export single-frame"):
        read_dicom(write_dicom(tmp_path / "multi.dcm", ramp(), frames=3))
    with pytest.raises(DicomError, match=r"JPEG-LS.*no installed decoder reads it; pip install pylibjpeg pylibjpeg-libjpeg"):
        read_dicom(write_dicom(tmp_path / "jls.dcm", ramp(), transfer_syntax="1.2.840.10008.1.2.4.80"))
    with pytest.raises(DicomError, match=r"JPEG 2000.*pip install pylibjpeg pylibjpeg-openjpeg"):
        read_dicom(write_dicom(tmp_path / "j2k.dcm", ramp(), transfer_syntax="1.2.840.10008.1.2.4.90"))
    (tmp_path / "fake.dcm").write_bytes(b"not a dicom file at all")
    with pytest.raises(DicomError, match="fake.dcm: not a readable DICOM file"):
        read_dicom(tmp_path / "fake.dcm")
    for err in (DicomError, DataError):
        assert issubclass(err, ValueError)  # scripts turn them into one error line


def test_refusal_inside_a_folder_is_one_clear_error(tmp_path):
    root = make_dicom_folder(tmp_path / "dcm", per_class=2)
    write_dicom(root / "a" / "cine.dcm", ramp(), frames=2)
    with pytest.raises(DataError, match="cine.dcm: multi-frame") as info:
        load_dataset(root)
    assert PATIENT_NAME not in str(info.value) and PATIENT_ID not in str(info.value)


def test_dicom_class_folders(tmp_path):
    root = make_dicom_folder(tmp_path / "dcm", per_class=3)
    ds = load_dataset(root)
    assert ds.column_names == ["image", "label"] and ds.features["label"].names == ["a", "b"]
    assert ds["label"] == [0, 0, 0, 1, 1, 1]
    im = ds[0]["image"]
    assert im.mode == "L" and im.size == (24, 24) and im.getextrema() == (0, 255)
    assert np.asarray(ds[3]["image"]).mean() > np.asarray(ds[0]["image"]).mean() - 50  # b brighter (min-max per image)
    row = ds.with_format("arrow")[0]
    assert row.column("image")[0]["path"].as_py() is None  # no file names stored either
    # train/<class>/*.dcm is found too, and extension-less DICOM files with the DICM preamble
    split = make_dicom_folder(tmp_path / "split" / "train", per_class=1)
    (split / "a" / "img0.dcm").rename(split / "a" / "IM000001")
    assert len(load_dataset(tmp_path / "split")) == 2


def test_cache_follows_file_changes(tmp_path):
    root = make_dicom_folder(tmp_path / "dcm", per_class=1)
    first = np.asarray(load_dataset(root)[0]["image"])
    write_dicom(root / "a" / "img0.dcm", ramp(24, 4095)[:, ::-1].copy())
    assert not np.array_equal(np.asarray(load_dataset(root)[0]["image"]), first)


@pytest.mark.parametrize("kind", ["csv", "json-map", "json-list"])
def test_label_tables(tmp_path, kind):
    write_dicom(tmp_path / "files" / "p1.dcm", ramp(seed=1))
    write_dicom(tmp_path / "files" / "p2.dcm", ramp(seed=2))
    Image.fromarray(ramp(24, 65535, seed=3)).save(tmp_path / "files" / "p3.png")
    rows = [("files/p1.dcm", "pneumonia"), ("files/p2.dcm", "normal"), (str(tmp_path / "files" / "p3.png"), "normal")]
    if kind == "csv":
        table = tmp_path / "labels.csv"
        table.write_text("File,Label\n" + "".join(f"{f},{lab}\n" for f, lab in rows))
    elif kind == "json-map":
        table = tmp_path / "labels.json"
        table.write_text(json.dumps(dict(rows)))
    else:
        table = tmp_path / "labels.json"
        table.write_text(json.dumps([{"path": f, "class": lab} for f, lab in rows]))
    ds = load_dataset(table)
    assert ds.features["label"].names == ["normal", "pneumonia"] and ds["label"] == [1, 0, 0]
    # one window for the whole table (the default): the 16-bit PNG spans it, the 12-bit DICOMs sit in its lowest 1/16
    assert all(r["image"].mode == "L" for r in ds) and ds[2]["image"].getextrema() == (0, 255)
    assert all(ds[i]["image"].getextrema()[1] <= 17 for i in (0, 1))
    per_image = load_dataset(table, intensity="per-image")
    assert all(r["image"].mode == "L" and r["image"].getextrema() == (0, 255) for r in per_image)


def test_label_table_errors(tmp_path):
    (tmp_path / "bad.csv").write_text("name,diagnosis\na.dcm,x\n")
    with pytest.raises(DataError, match="bad.csv: .*needs a file column"):
        load_dataset(tmp_path / "bad.csv")
    (tmp_path / "missing.csv").write_text("file,label\nnope.dcm,x\n")
    with pytest.raises(DataError, match=r"missing.csv: 1 listed file\(s\) do not exist, e.g. .*nope.dcm"):
        load_dataset(tmp_path / "missing.csv")


def test_missing_local_path_is_one_line(tmp_path):
    for source in ("fx/doesnotexist", "doesnotexist"):
        with pytest.raises(DataError, match=f"^{source}: no such folder, and no Hub repo of that name") as info:
            load_dataset(source)
        assert "\n" not in str(info.value)
    for source in (str(tmp_path / "nope"), "./nope", "a/b/c", "scan.dcm"):
        with pytest.raises(DataError, match="no such file or folder"):
            load_dataset(source)
    (tmp_path / "link").symlink_to(tmp_path / "gone")
    with pytest.raises(DataError, match="a symlink to .*gone, which does not exist"):
        load_dataset(tmp_path / "link")


def test_prepare_command_windows_and_refusals(tmp_path, capsys):
    from synthxray.cli import main

    root = make_dicom_folder(tmp_path / "dcm", per_class=2)
    assert main(["prepare", "--input", str(root), "--output_dir", str(tmp_path / "narrow"), "--window_center", "1000",
                 "--window_width", "200"]) == 0
    assert "wrote 4 images (a, b)" in capsys.readouterr().out
    narrow = load_dataset(tmp_path / "narrow")
    assert main(["prepare", "--input", str(root), "--output_dir", str(tmp_path / "own"), "--ignore_file_window"]) == 0
    own = load_dataset(tmp_path / "own")
    assert narrow.column_names == ["image", "label"] and narrow.features["label"].names == ["a", "b"]
    a, b = np.asarray(narrow[0]["image"]), np.asarray(own[0]["image"])
    assert ((a == 0) | (a == 255)).mean() > 0.8 and ((b == 0) | (b == 255)).mean() < 0.2  # the window was applied
    assert main(["prepare", "--input", str(root), "--output_dir", str(tmp_path / "win"), "--window", "0,4095", "--no_invert"]) == 0
    for argv, message in (
        (["--output_dir", str(tmp_path / "own")], "already exists and is not empty"),
        (["--output_dir", str(tmp_path / "x"), "--window", "9,1"], "--window must be two finite numbers with LOW < HIGH"),
        (["--output_dir", str(tmp_path / "x"), "--window_width", "10"], "--window_center and --window_width go together"),
    ):
        capsys.readouterr()
        assert main(["prepare", "--input", str(root), *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "x").exists()
    for folder in ("narrow", "own", "win"):
        for f in (tmp_path / folder).rglob("*"):
            if f.is_file():
                assert PATIENT_ID.encode() not in f.read_bytes() and b"img0" not in f.read_bytes()


def test_train_script_missing_dataset_is_one_line(tmp_path, capsys):
    script = load_script("train_scripts/train_ddpm.py")
    assert script.main(["--dataset", "fx/doesnotexist", "--output_dir", str(tmp_path / "o"), "--resolution", "16"]) == 2
    err = capsys.readouterr().err.strip()
    assert ": error: fx/doesnotexist: no such folder, and no Hub repo of that name" in err
    assert len(err.splitlines()) == 1 and "Traceback" not in err
