"""Discovery: which files ``hlfnet predict`` reads, and the names their predictions get.

An input is one image, one NIfTI volume, or a folder of either (never both, nothing else in it unless a
``--pattern`` chooses the files). A folder of nnU-Net channel files (``<case>_0000<ending>``,
``<case>_0001<ending>``...) is read one case per group (:func:`group_channels`). Each prediction is named after its input's stem; inputs whose stems collide
are refused, and so is an output folder that is the input folder.
"""

from __future__ import annotations

import os
from pathlib import Path

from hlfnet.errors import OutputRefused

__all__ = ["collect_inputs", "find_inputs", "group_channels", "output_stems", "refuse_input_folder"]


def collect_inputs(folder: str | os.PathLike[str], pattern: str | None = None) -> tuple[list[Path], str]:
    """The images or volumes of a folder, sorted by name.

    Args:
        folder: the input folder (not searched recursively; hidden files are ignored).
        pattern: a glob such as ``"ISIC_*.jpg"`` choosing the files; others are ignored. Without it every
            file must be an image (PNG, JPEG, BMP, TIFF, ``.npy``) or every file a NIfTI volume.

    Returns:
        ``(files, kind)`` with ``kind`` ``"image"`` or ``"volume"``.

    Raises:
        FileNotFoundError: the folder does not exist.
        ValueError: no images in it, a file that is not an image among them (named), or images mixed with
            volumes.
    """
    from hlfnet.data.io import IMAGE_SUFFIXES, check_regular_file, is_nifti

    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder")
    if pattern is not None and (not pattern or "/" in pattern or "\\" in pattern or pattern.startswith("..")):
        raise ValueError(
            f"--pattern {pattern!r}: a file-name pattern inside the input folder such as '*.png', not a path"
        )
    entries = sorted(
        p for p in (folder.glob(pattern) if pattern else folder.iterdir()) if not p.name.startswith(".")
    )
    for entry in entries:  # a FIFO, socket or broken link named *.png is named, never skipped in silence
        if not (entry.is_dir() and not entry.is_symlink()):
            check_regular_file(entry)
    files = [p for p in entries if p.is_file()]
    volumes = [p for p in files if is_nifti(p)]
    images = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
    others = [p for p in files if p not in volumes and p not in images]
    if others:
        raise ValueError(
            f"{folder}: {len(others)} file(s) that are not images or NIfTI volumes, e.g. {others[0].name!r}; "
            f"remove them or choose the images with --pattern (e.g. '*.jpg')"
        )
    if volumes and images:
        raise ValueError(
            f"{folder}: holds both images (e.g. {images[0].name}) and volumes (e.g. {volumes[0].name})"
        )
    if not files:
        what = f"matching {pattern!r}" if pattern else f"({', '.join(IMAGE_SUFFIXES)}, .nii, .nii.gz)"
        raise ValueError(f"{folder}: no images {what}")
    return files, "volume" if volumes else "image"


def find_inputs(inputs: str | os.PathLike[str], pattern: str | None = None) -> tuple[list[Path], str]:
    """The files to predict for an image, a volume or a folder of either (see :func:`collect_inputs`).

    Returns:
        ``(files, kind)`` with ``kind`` ``"image"`` or ``"volume"``.

    Raises:
        FileNotFoundError: ``inputs`` does not exist.
        ValueError: a file that is neither an image nor a NIfTI volume, or a folder :func:`collect_inputs`
            refuses.
    """
    from hlfnet.data.io import IMAGE_SUFFIXES, check_regular_file, is_nifti

    inputs = Path(inputs)
    if inputs.is_dir():
        return collect_inputs(inputs, pattern)
    if not os.path.lexists(inputs):
        raise FileNotFoundError(f"{inputs}: no such file or folder")
    check_regular_file(inputs)
    if is_nifti(inputs):
        return [inputs], "volume"
    if inputs.suffix.lower() in IMAGE_SUFFIXES:
        return [inputs], "image"
    raise ValueError(f"{inputs}: not an image ({', '.join(IMAGE_SUFFIXES)}) or NIfTI volume")


def group_channels(
    inputs: Path, files: list[Path], kind: str
) -> tuple[list[Path | tuple[Path, ...]], list[str]] | None:
    """nnU-Net channel files grouped into cases: ``(cases, stems)``, or ``None`` when ``files`` are not such.

    Files are grouped when every one is named ``<case>_<XXXX><ending>`` and some case has a channel other than
    ``_0000`` (a single-channel ``imagesTs`` keeps one prediction per file, named as before). Each case is then
    the tuple of its files in channel order, predicted as one multi-channel input, and named ``<case>``.

    Raises:
        ValueError: a case lacks a channel file the others have, naming the missing file.
    """
    from hlfnet.data.layouts import group_channel_files

    if not files:
        return None
    name = files[0].name.lower()
    ending = (".nii.gz" if name.endswith(".nii.gz") else ".nii") if kind == "volume" else files[0].suffix
    by_case, stray = group_channel_files(files, ending)
    if stray or all(set(channels) == {0} for channels in by_case.values()):
        return None
    count = max(max(channels) for channels in by_case.values()) + 1
    for case, channels in sorted(by_case.items()):
        missing = [c for c in range(count) if c not in channels]
        if missing:
            raise ValueError(
                f"{inputs / f'{case}_{missing[0]:04d}{ending}'}: missing; the cases of {inputs} have {count} "
                f"channel files (_0000..._{count - 1:04d}{ending}) and {case!r} has {len(channels)}"
            )
    cases = sorted(by_case)
    return [tuple(by_case[c][k] for k in range(count)) for c in cases], cases


def output_stems(inputs: Path, files: list[Path], kind: str) -> list[str]:
    """The name (without suffix) of each file's prediction: the image stem, or the volume name less ``.nii.gz``.

    Raises:
        ValueError: two inputs share a stem (their outputs would collide).
    """
    from hlfnet.data.io import nifti_stem

    stems = [nifti_stem(f) if kind == "volume" else f.stem for f in files]
    duplicates = sorted({s for s in stems if stems.count(s) > 1})
    if duplicates:
        raise ValueError(
            f"{inputs}: several inputs share the name {duplicates[0]!r}; their outputs would collide"
        )
    return stems


def refuse_input_folder(inputs: Path, output: Path) -> None:
    """Predictions never go into the input folder (they could replace the images), even with ``overwrite``.

    Raises:
        OutputRefused: ``output`` is the input folder (or the folder of the input file).
    """
    folder = inputs if inputs.is_dir() else inputs.parent
    if output.exists() and output.resolve() == folder.resolve():
        raise OutputRefused(
            f"{output}: is the input folder; predictions are never written among the inputs (even with "
            "--overwrite): choose another --output"
        )
