#!/usr/bin/env bash
# Native-resolution patches (patch_2d) against the whole-image resize at equal training pixels, on the ISBI 2012
# membranes (docs/training.md, "Native resolution against the whole-image resize"). Usage:
#   benchmarks/native_vs_resize.sh [DATA] [RUNS]     (defaults: ../shared/data/isbi2012-membrane, runs)
set -euo pipefail
DATA=${1:-../shared/data/isbi2012-membrane}
RUNS=${2:-runs}
HLFNET=${HLFNET:-hlfnet}
RESIZE=$(mktemp -d)/em_resize.yaml
cat > "$RESIZE" <<'YAML'
extends: patch_2d
data:
  preprocessing: resize
  image_size: [256, 256]
  patch_size: null
  rotate_degrees: 0.0
train:
  batch_size: 6
YAML
S=(--set "data.root=$DATA" --set model.base_channels=8 --set train.progress_bar=false --set train.lr=3e-4)
# 8 x 120 patches of 256x256 = 960 patches; 46 x 21 images resized to 256x256 = 966 images
/usr/bin/time -f "patch_2d: %e s" "$HLFNET" train --config patch_2d "${S[@]}" --set train.max_epochs=8 \
  --set train.lr_step_epochs=6 --run-dir "$RUNS/em_patch"
/usr/bin/time -f "resize: %e s" "$HLFNET" train --config "$RESIZE" "${S[@]}" --set train.max_epochs=46 \
  --set train.lr_step_epochs=32 --run-dir "$RUNS/em_resize"
for run in em_patch em_resize; do "$HLFNET" evaluate "$RUNS/$run" --split test; done
# the thin structure itself: membrane Dice and boundary distances at full resolution
PYTHON=${PYTHON:-python}
"$PYTHON" "$(dirname "$0")/membranes.py" "$RUNS/em_patch" "$RUNS/em_resize" --data "$DATA"
