"""``hlfnet predict``: an image, a volume or a folder of either predicted into an output folder.

The steps, each in its own module: find the inputs and name their outputs (:mod:`.discovery`), apply the
output folder's overwrite / resume policy (:mod:`.output_folder`), predict (the :class:`~.Predictor`), write
masks and probability maps (:mod:`.writers`), then the manifest and the marker that says the folder is
complete.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hlfnet.atomic import folder_lock, record_outputs
from hlfnet.evaluation.predictor.discovery import (
    find_inputs,
    group_channels,
    output_stems,
    refuse_input_folder,
)
from hlfnet.evaluation.predictor.output_folder import (
    MANIFEST_NAME,
    prediction_signature,
    prepare_output,
    write_manifest,
)
from hlfnet.evaluation.predictor.writers import (
    PROBABILITY_DIR,
    probability_names,
    write_mask_png,
    write_probability_maps,
)

if TYPE_CHECKING:
    from hlfnet.evaluation.predictor.predictor import Predictor

__all__ = ["predict_to_folder"]

logger = logging.getLogger(__name__)


def predict_to_folder(
    predictor: Predictor,
    inputs: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    save_probabilities: bool = False,
    pattern: str | None = None,
) -> list[Path]:
    """Predict an image, a NIfTI volume or a folder of either with ``predictor`` into the folder ``output``.

    Masks go to ``output/<stem>.png`` (0/255 at the input's size) or ``output/<stem>.nii.gz``; probability
    maps to ``output/probabilities/``; ``output/predictions.json`` records the model and options.

    Args:
        inputs: an image, a ``.nii``/``.nii.gz`` volume, or a folder of them.
        output: the output folder (created).
        overwrite: replace predictions hlfnet wrote in ``output`` (listed in its ``.hlfnet-output.json``);
            other files are never replaced, and ``output`` may never be the input folder. Without it, a
            folder holding complete predictions is refused, while one left by a killed run with the same
            model, inputs and options is finished (masks already written are kept).
        save_probabilities: also write probability maps.
        pattern: glob choosing the files of an input folder.

    Returns:
        The written mask files.

    Raises:
        FileNotFoundError: ``inputs`` does not exist.
        FileExistsError: ``output`` already holds predictions and ``overwrite`` is false.
        OutputRefused: ``output`` is the input folder, or a target is a symlink or a file hlfnet did not
            write.
        ValueError: no images, a non-image file, an image or volume the model cannot take (names the file).
    """
    inputs, output = Path(inputs), Path(output)
    files, kind = find_inputs(inputs, pattern)
    grouped = group_channels(inputs, files, kind) if inputs.is_dir() else None
    cases: list[Path | tuple[Path, ...]]
    if grouped is not None:  # nnU-Net channel files: one case per <case>_XXXX group, named <case>
        cases, stems = grouped
    else:
        cases, stems = list(files), output_stems(inputs, files, kind)
    targets = [output / f"{stem}{'.nii.gz' if kind == 'volume' else '.png'}" for stem in stems]
    refuse_input_folder(inputs, output)
    planned = [t.name for t in targets] + [MANIFEST_NAME]
    if save_probabilities:
        planned += [
            f"{PROBABILITY_DIR}/{name}"
            for stem in stems
            for name in probability_names(stem, kind, predictor.out_channels)
        ]
    signature = prediction_signature(
        {
            **{k: str(v) for k, v in predictor.source.items()},
            "input": str(inputs.absolute()),
            "files": [f.name for f in files],
            **options(predictor, save_probabilities),
        }
    )
    if os.path.lexists(output) and not output.is_dir():
        raise FileExistsError(f"{output}: exists and is not a folder")
    with folder_lock(output):  # one predict per folder: a second one is refused before it changes anything
        done = prepare_output(output, planned, overwrite, signature)
        written = predict_all(predictor, cases, targets, stems, kind, output, save_probabilities, done)
        manifest = {**predictor.source, "input": str(inputs), "files": [p.name for p in written]}
        write_manifest(output, manifest | options(predictor, save_probabilities))
        record_outputs(output, planned, "predictions", status="complete", signature=signature)
    logger.info("wrote %d prediction(s) to %s", len(written), output)
    return written


def predict_all(
    predictor: Predictor,
    files: list[Path | tuple[Path, ...]],
    targets: list[Path],
    stems: list[str],
    kind: str,
    output: Path,
    save_probabilities: bool,
    done: set[str],
) -> list[Path]:
    """Predict the inputs whose masks are not ``done`` yet; returns every mask of ``targets`` now written.

    An input is a file or a case's channel files in order (a tuple).
    """
    written: list[Path] = [t for t in targets if t.name in done]
    todo = [(f, t, s) for f, t, s in zip(files, targets, stems, strict=True) if t.name not in done]
    if done:
        logger.info(
            "%s: %d prediction(s) already complete; predicting the other %d", output, len(done), len(todo)
        )
    bar = predictor.progress_bar(len(todo), "volume" if kind == "volume" else "img")
    try:
        for target in predict_and_write(predictor, todo, kind, output, save_probabilities):
            written.append(target)
            bar.update(1)
    finally:
        bar.close()
    written.sort(key=targets.index)
    return written


def predict_and_write(
    predictor: Predictor,
    todo: list[tuple[Path | tuple[Path, ...], Path, str]],
    kind: str,
    output: Path,
    save_probabilities: bool,
) -> Iterator[Path]:
    """Predict each ``(input, target, stem)`` and write it, yielding each target once it is complete."""
    probability_folder = output / PROBABILITY_DIR
    if kind == "volume":
        for file, target, stem in todo:
            probabilities = str(probability_folder / f"{stem}.nii.gz") if save_probabilities else None
            yield predictor.predict_volume(file, target, probabilities, root=output)
        return
    predictions = predictor.predict_images([f for f, _, _ in todo], keep_probabilities=save_probabilities)
    for prediction, (_, target, stem) in zip(predictions, todo, strict=True):
        # probabilities first: a mask under its final name means the case is complete
        if save_probabilities and prediction.probabilities is not None:
            write_probability_maps(prediction.probabilities, probability_folder, stem, output)
        yield write_mask_png(
            prediction.mask, target, predictor.num_classes, root=output, label_values=predictor.output_values
        )


def options(predictor: Predictor, save_probabilities: bool) -> dict[str, Any]:
    """The options and preprocessing that decide the predictions, as recorded in signature and manifest."""
    return {
        "tta": predictor.tta,
        "largest_component": predictor.largest_component,
        "threshold": predictor.threshold,
        "probabilities": save_probabilities,
        "label_values_written": list(predictor.output_values) if predictor.output_values else None,
        "data": predictor.cfg.to_dict(),
    }
