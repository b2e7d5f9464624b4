"""``hlfnet data download``: fetch the official archives, resumably, verify checksums, extract.

* ``isic2017``: the six Task 1 archives of the ISIC 2017 challenge (training, validation and test images and
  ground truth) from the ISIC challenge bucket; the ISIC archive publishes no checksums, so the zip files'
  own CRCs are the integrity check. Extracted into ``ROOT/ISIC-2017_*`` (the layout the loader reads).
* ``spleen``: ``Task09_Spleen.tar`` of the Medical Segmentation Decathlon from the mirror MONAI uses, checked
  against its published MD5. Extracted into ``ROOT/Task09_Spleen`` (``dataset.json``, ``imagesTr`` ...).

Downloads go to ``FILE.part`` and continue from its size with an HTTP ``Range`` request when interrupted.
``--base-url`` swaps the host for a mirror (same file names).
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import tarfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Resource", "RESOURCES", "DATASET_DIRS", "download_file", "extract_archive", "download_dataset"]

logger = logging.getLogger(__name__)

_ISIC = "https://isic-challenge-data.s3.amazonaws.com/2017/"


@dataclass(frozen=True)
class Resource:
    """One archive: where it lives, its file name and its published checksum (if any)."""

    url: str
    filename: str
    md5: str | None = None
    sha256: str | None = None


RESOURCES: dict[str, tuple[Resource, ...]] = {
    "isic2017": tuple(
        Resource(_ISIC + name, name)
        for name in (
            "ISIC-2017_Training_Data.zip",
            "ISIC-2017_Training_Part1_GroundTruth.zip",
            "ISIC-2017_Validation_Data.zip",
            "ISIC-2017_Validation_Part1_GroundTruth.zip",
            "ISIC-2017_Test_v2_Data.zip",
            "ISIC-2017_Test_v2_Part1_GroundTruth.zip",
        )
    ),
    "spleen": (
        Resource(
            "https://msd-for-monai.s3-us-west-2.amazonaws.com/Task09_Spleen.tar",
            "Task09_Spleen.tar",
            md5="410d4a301da4e5b2f6f86ec3ddba524e",
        ),
    ),
}
DATASET_DIRS = {"isic2017": ".", "spleen": "Task09_Spleen"}


def _digest(path: Path, algorithm: str) -> str:
    hasher = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            hasher.update(block)
    return hasher.hexdigest()


def _verify(path: Path, md5: str | None, sha256: str | None) -> str | None:
    """``None`` when the checksums match (or none is given), else a description of the mismatch."""
    for algorithm, expected in (("md5", md5), ("sha256", sha256)):
        if expected:
            actual = _digest(path, algorithm)
            if actual.lower() != expected.lower():
                return f"{algorithm} {actual}, expected {expected}"
    return None


def download_file(
    url: str,
    dest: str | Path,
    md5: str | None = None,
    sha256: str | None = None,
    timeout: float = 60.0,
    progress: Callable[[int, int | None], None] | None = None,
) -> Path:
    """Download ``url`` to ``dest``, resuming ``dest.part`` and verifying the checksum.

    Args:
        url: http(s) URL.
        dest: Target file; kept as is when it exists and matches the checksum.
        md5: Expected MD5 (hex), if published.
        sha256: Expected SHA-256 (hex), if published.
        timeout: Socket timeout in seconds.
        progress: Called as ``progress(bytes_so_far, total_or_None)``.

    Returns:
        ``dest``.

    Raises:
        ValueError: checksum mismatch (the bad file is removed).
        FileNotFoundError: the server answers 404.
        OSError: network errors and interrupted transfers (the ``.part`` file is kept; run again to resume).
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.is_file():
        mismatch = _verify(dest, md5, sha256)
        if mismatch is None:
            logger.info("%s: already downloaded", dest)
            return dest
        logger.warning("%s: existing file fails the checksum (%s); downloading again", dest, mismatch)
        dest.unlink()
    part = dest.with_name(dest.name + ".part")
    offset = part.stat().st_size if part.is_file() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "hlfnet"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 - user-chosen http(s) URL
    except urllib.error.HTTPError as error:
        if error.code == 416 and offset:  # nothing left to send: the part is complete
            response = None
        elif error.code == 404:
            raise FileNotFoundError(f"{url}: not found on the server (HTTP 404)") from error
        else:
            raise OSError(f"{url}: HTTP {error.code} {error.reason}") from error
    except urllib.error.URLError as error:
        raise OSError(f"{url}: cannot connect ({error.reason}); partial data kept in {part}") from error
    if response is not None:
        with response:
            resumed = response.status == 206
            if offset and not resumed:
                logger.info("%s: server ignored the Range request; starting over", url)
                offset = 0
            length = response.headers.get("Content-Length")
            total = offset + int(length) if length is not None else None
            logger.info("downloading %s%s", url, f" (resuming at {offset} bytes)" if resumed else "")
            done = offset
            with open(part, "ab" if resumed else "wb") as handle:
                try:
                    for block in iter(lambda: response.read(1 << 20), b""):
                        handle.write(block)
                        done += len(block)
                        if progress is not None:
                            progress(done, total)
                except (http.client.HTTPException, OSError) as error:
                    raise OSError(
                        f"{url}: transfer interrupted after {done} bytes ({type(error).__name__}); "
                        f"partial data kept in {part}, run again to resume"
                    ) from error
            if total is not None and done < total:
                raise OSError(
                    f"{url}: transfer ended at {done} of {total} bytes; partial data kept in {part}, run again to resume"
                )
    mismatch = _verify(part, md5, sha256)
    if mismatch is not None:
        part.unlink()
        raise ValueError(f"{dest}: checksum mismatch ({mismatch}); the download was removed, run again")
    os.replace(part, dest)
    return dest


def _safe_target(root: Path, name: str, archive: Path) -> Path:
    target = (root / name).resolve()
    if not target.is_relative_to(root.resolve()):
        raise ValueError(f"{archive}: member {name!r} would extract outside {root}")
    return target


def extract_archive(archive: str | Path, root: str | Path) -> None:
    """Extract a ``.zip`` or ``.tar``/``.tar.gz`` into ``root``, refusing members that escape it.

    Raises:
        ValueError: a corrupt archive, a bad CRC, an unknown type, or a member escaping ``root``.
    """
    archive, root = Path(archive), Path(root)
    root.mkdir(parents=True, exist_ok=True)
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                bad = zf.testzip()
                if bad is not None:
                    raise ValueError(f"{archive}: corrupt member {bad} (CRC mismatch)")
                for member in zf.infolist():
                    _safe_target(root, member.filename, archive)
                zf.extractall(root)
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive) as tf:
                for member in tf.getmembers():
                    _safe_target(root, member.name, archive)
                    if member.issym() or member.islnk():
                        raise ValueError(f"{archive}: refusing link member {member.name!r}")
                tf.extractall(root, filter="data") if hasattr(tarfile, "data_filter") else tf.extractall(root)
        else:
            raise ValueError(f"{archive}: neither a zip nor a tar archive")
    except (zipfile.BadZipFile, tarfile.TarError, EOFError) as error:
        raise ValueError(f"{archive}: corrupt archive ({error})") from error


def download_dataset(
    name: str,
    root: str | Path,
    base_url: str | None = None,
    keep_archives: bool = False,
    progress: Callable[[str, int, int | None], None] | None = None,
) -> Path:
    """Download and extract a data set into ``root``; returns the folder to use as ``DataConfig.root``.

    Args:
        name: ``"isic2017"`` or ``"spleen"``.
        root: Destination folder (archives go to ``root/.downloads``).
        base_url: Mirror to fetch the same file names from, instead of the official hosts.
        keep_archives: Keep the archives after extraction (default: delete them).
        progress: Called as ``progress(filename, bytes_so_far, total_or_None)``.

    Raises:
        ValueError: unknown name, checksum mismatch, corrupt archive.
        OSError: network errors (run again to resume).
    """
    if name not in RESOURCES:
        raise ValueError(f"unknown data set {name!r}; choose from {sorted(RESOURCES)}")
    root = Path(root).expanduser()
    downloads = root / ".downloads"
    for resource in RESOURCES[name]:
        marker = downloads / f"{resource.filename}.extracted"
        if marker.is_file():
            logger.info("%s: already extracted", resource.filename)
            continue
        url = f"{base_url.rstrip('/')}/{resource.filename}" if base_url else resource.url
        callback = (lambda done, total, f=resource.filename: progress(f, done, total)) if progress else None
        archive = download_file(
            url, downloads / resource.filename, resource.md5, resource.sha256, progress=callback
        )
        logger.info("extracting %s into %s", archive.name, root)
        extract_archive(archive, root)
        marker.write_text("ok\n")  # a second run skips this archive even when it was deleted
        if not keep_archives:
            archive.unlink()
    data_root = (root / DATASET_DIRS[name]).resolve()
    if not data_root.is_dir():
        raise FileNotFoundError(f"{data_root}: expected folder missing after extracting {name}")
    return data_root
