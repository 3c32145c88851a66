"""Hospital-style test inputs written on the fly: DICOM files (pydicom) and 12/16-bit PNGs.

Every DICOM carries a planted patient name and ID so the tests can grep every output for them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

PATIENT_NAME = "Zyxwvut^Qwertina"
PATIENT_ID = "PID-8675309-XQ"
INSTITUTION = "Saint Plantedname Hospital"


def write_dicom(
    path: Path,
    pixels: np.ndarray,
    photometric: str = "MONOCHROME2",
    slope: float | None = None,
    intercept: float | None = None,
    window: tuple[float, float] | None = None,
    bits_stored: int = 12,
    frames: int = 1,
    transfer_syntax: str | None = None,
    voi_lut: tuple[int, list[int]] | None = None,
) -> Path:
    """A single (or ``frames``-frame) 16-bit unsigned DICOM file; ``window`` is (centre, width)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = transfer_syntax or ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.PatientName = PATIENT_NAME
    ds.PatientID = PATIENT_ID
    ds.PatientBirthDate = "19010203"
    ds.StudyDate = "20240229"
    ds.InstitutionName = INSTITUTION
    ds.ReferringPhysicianName = "Dr^Plantedphysician"
    ds.Modality = "DX"
    ds.Rows, ds.Columns = pixels.shape[-2:]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = 16
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = 0
    if frames > 1:
        ds.NumberOfFrames = frames
        pixels = np.stack([pixels] * frames)
    if slope is not None:
        ds.RescaleSlope = slope
        ds.RescaleIntercept = intercept or 0
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    if voi_lut is not None:
        first, table = voi_lut
        item = Dataset()
        item.LUTDescriptor = [len(table), first, 8]
        item.LUTData = np.asarray(table, dtype=np.uint16).tobytes()
        ds.VOILUTSequence = [item]
    ds.PixelData = np.ascontiguousarray(pixels, dtype=np.uint16).tobytes()
    if transfer_syntax is not None and transfer_syntax != ExplicitVRLittleEndian:
        from pydicom.encaps import encapsulate

        ds.PixelData = encapsulate([b"\x00" * 64])  # never decoded: the reader must stop at the missing decoder
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def ramp(size: int = 24, high: int = 4095, seed: int = 0, shift: int = 0) -> np.ndarray:
    """A 12-bit (``high`` = 4095) ramp with a little noise: bright right edge, dark left edge."""
    rng = np.random.default_rng(seed)
    base = np.linspace(0, high, size)[None, :].repeat(size, 0)
    return np.clip(base + rng.normal(0, high * 0.01, (size, size)) + shift, 0, high).astype(np.uint16)


def make_dicom_folder(root: Path, per_class: int = 6, size: int = 24) -> Path:
    """Two class folders of 12-bit DICOMs (class ``b`` brighter), with planted patient data."""
    for c, name in enumerate(("a", "b")):
        for i in range(per_class):
            write_dicom(root / name / f"img{i}.dcm", ramp(size, 4095, seed=10 * c + i, shift=c * 800))
    return root


def make_16bit_folder(root: Path, high: int = 4095, per_class: int = 6, size: int = 24) -> Path:
    """Two class folders of 16-bit PNGs holding values 0..``high`` (4095: a 12-bit export)."""
    for c, name in enumerate(("a", "b")):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            Image.fromarray(ramp(size, high, seed=10 * c + i, shift=c * high // 5)).save(root / name / f"img{i}.png")
    return root
