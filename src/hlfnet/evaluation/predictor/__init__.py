"""Inference: one :class:`Predictor` that ``hlfnet predict``, ``hlfnet evaluate``, ``hlfnet report`` and
``hlfnet serve`` all wrap.

The predictor rebuilds the training preprocessing from the run (``hlfnet.data.preprocess_image`` /
``volume_to_slices`` with the run's ``DataConfig``), runs the network in batches, and brings the prediction
back to the input's geometry:

* 2-D images: the class probabilities are resized bilinearly from the network size to the original image
  size, then thresholded (binary: ``p > threshold``; multi-class: argmax) and written as 8-bit PNG — binary
  masks as 0/255, multi-class masks as class indices — never JPEG.
* NIfTI volumes: every axial slice is predicted (as the paper, a 2-D network on slices), probabilities are
  resized back to the slice size, and the labels are stacked into a NIfTI with the input's affine and header
  (``hlfnet.data.slices_to_volume``).

Options (each measured on real data in ``docs/evaluation.md``): probability maps, flip test-time
augmentation (the mean of the probabilities over identity, horizontal, vertical and both flips — the flips
of the training augmentation) and keeping only the largest connected component of each class.

The parts, each with a public interface:

========================  ==========================================================================
:mod:`.predictor`         :class:`Predictor` — the network with its preprocessing and options; ties the parts
:mod:`.loading`           the network from a run folder, weights or an export; the device
:mod:`.preprocessing`     an input file as the network's tensor; background reading; batching
:mod:`.inference`         logits, probabilities with flip TTA, labels, resizing, largest component
:mod:`.images`            2-D images → :class:`Prediction` at the original and the network size
:mod:`.volumes`           NIfTI volumes → :class:`VolumePrediction`, slice by slice
:mod:`.discovery`         which files to predict and the names of their outputs
:mod:`.writers`           PNG masks and probability maps, NIfTI label and probability volumes
:mod:`.output_folder`     overwrite / resume policy of an output folder; ``predictions.json``
:mod:`.predict_folder`    ``hlfnet predict``: the steps above, for a file or a folder
========================  ==========================================================================
"""

from __future__ import annotations

from hlfnet.evaluation.predictor.discovery import collect_inputs
from hlfnet.evaluation.predictor.images import Prediction
from hlfnet.evaluation.predictor.inference import TTA_FLIPS, largest_component
from hlfnet.evaluation.predictor.loading import resolve_device
from hlfnet.evaluation.predictor.output_folder import MANIFEST_NAME
from hlfnet.evaluation.predictor.predictor import Predictor
from hlfnet.evaluation.predictor.preprocessing import PreparedImage
from hlfnet.evaluation.predictor.volumes import VolumePrediction
from hlfnet.evaluation.predictor.writers import PROBABILITY_DIR, write_mask_png, write_probability_png

__all__ = [
    "MANIFEST_NAME",
    "PROBABILITY_DIR",
    "TTA_FLIPS",
    "Prediction",
    "Predictor",
    "PreparedImage",
    "VolumePrediction",
    "collect_inputs",
    "largest_component",
    "resolve_device",
    "write_mask_png",
    "write_probability_png",
]
