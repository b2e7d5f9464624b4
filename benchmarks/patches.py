"""Native-resolution plans, side by side in one run: 3-D patch training speed, sliding-window prediction overhead,
peak memory of predicting a large CT.

1. **Training**: voxels per second of a 3-D training step (forward, Dice loss, backward, Adam) at the same patch
   and batch for hlfnet's HLF-Net and Unet-28 against MONAI's 3-D ``BasicUNet`` (the peer).
2. **Prediction**: ``Predictor.predict_volume_array`` (read, canonical orientation, resampling, normalisation,
   sliding windows, restore onto the input's grid) against a bare ``sliding_window_inference`` call with the same
   network on the already prepared tensor: the overhead of everything around the windows.
3. **Peak memory**: maximum resident memory of a separate process predicting a ``--peak-shape`` (512×512×300) CT
   (0.98×0.98×2 mm, int16) with a 3-mm plan, against the same process's resident memory before it starts.

    python benchmarks/patches.py --markdown patches.md            # a few minutes on two cores

Absolute figures move with the machine and its load; read the ratios.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def _step_time(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, iters: int) -> float:
    from monai.losses import DiceLoss

    loss_fn = DiceLoss(softmax=True, to_onehot_y=True, include_background=False)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    times = []
    for _ in range(iters + 1):
        start = time.perf_counter()
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        times.append(time.perf_counter() - start)
    return float(np.median(times[1:]))  # the first step warms up


def training(patch: tuple[int, int, int], batch: int, base: int, iters: int) -> list[dict]:
    from monai.networks.nets import BasicUNet

    from hlfnet import create_model

    torch.manual_seed(0)
    x = torch.randn(batch, 1, *patch)
    y = torch.randint(0, 3, (batch, 1, *patch))
    models = {
        "hlfnet": create_model("hlfnet", in_channels=1, out_channels=3, spatial_dims=3, base_channels=base),
        "unet": create_model("unet", in_channels=1, out_channels=3, spatial_dims=3, base_channels=base),
        "monai_basicunet": BasicUNet(
            spatial_dims=3,
            in_channels=1,
            out_channels=3,
            features=(base, base, 2 * base, 4 * base, 8 * base, base),
        ),
    }
    rows = []
    for name, model in models.items():
        seconds = _step_time(model.train(), x, y, iters)
        rows.append(
            {"network": name, "step_s": seconds, "voxels_per_s": batch * int(np.prod(patch)) / seconds}
        )
    peer = rows[-1]["voxels_per_s"]
    for row in rows:
        row["vs_basicunet"] = row["voxels_per_s"] / peer
    return rows


def _ct(path: Path, shape: tuple[int, int, int], spacing: tuple[float, float, float]) -> Path:
    import nibabel as nib

    rng = np.random.default_rng(0)
    data = rng.integers(-400, 400, shape, dtype=np.int16)
    affine = np.diag([-spacing[0], spacing[1], spacing[2], 1.0])  # LAS, as many scanners store
    nib.save(nib.Nifti1Image(data, affine), str(path))
    return path


def _predictor(base: int, patch: tuple[int, int, int], target: float):
    from hlfnet import create_model
    from hlfnet.data import DataConfig
    from hlfnet.evaluation import Predictor

    model = create_model("hlfnet", in_channels=1, out_channels=3, spatial_dims=3, base_channels=base).eval()
    cfg = DataConfig(
        format="nifti",
        root="x",
        preprocessing="patch",
        spatial_dims=3,
        num_classes=3,
        in_channels=1,
        normalization="ct",
        intensity_stats=((-1000.0, 1000.0, 0.0, 300.0),),
        target_spacing=(target,) * 3,
        patch_size=patch,
    )
    return Predictor(model, cfg, device="cpu", batch_size=2)


def prediction(base: int, patch: tuple[int, int, int], folder: Path, shape: tuple[int, int, int]) -> dict:
    from monai.inferers import sliding_window_inference

    from hlfnet.data.io import load_volume
    from hlfnet.data.plan import prepare_case
    from hlfnet.evaluation.predictor.inference import activate

    path = _ct(folder / "ct.nii.gz", shape, (1.5, 1.5, 2.5))
    predictor = _predictor(base, patch, 2.0)
    start = time.perf_counter()
    predictor.predict_volume_array(path)
    ours = time.perf_counter() - start
    volume, meta = load_volume(path)
    case = prepare_case(volume[None], meta.affine, predictor.cfg)
    x = torch.from_numpy(case.image)[None]
    start = time.perf_counter()
    with torch.inference_mode():
        sliding_window_inference(
            x, patch, 2, lambda w: activate(predictor.model(w), 3), overlap=0.5, mode="gaussian"
        )
    bare = time.perf_counter() - start
    return {"predict_s": ours, "bare_sliding_window_s": bare, "overhead": ours / bare - 1.0}


def _peak_child(folder: str) -> None:
    import resource

    path = Path(folder) / "big.nii.gz"
    predictor = _predictor(8, (64, 64, 64), 3.0)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    prediction = predictor.predict_volume_array(path)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    facts = {"labels": list(prediction.labels.shape), "rss_before_kib": before, "peak_kib": peak}
    print(json.dumps(facts))


def peak_memory(shape: tuple[int, int, int], folder: Path) -> dict:
    _ct(folder / "big.nii.gz", shape, (0.98, 0.98, 2.0))
    done = subprocess.run(
        [sys.executable, __file__, "--peak-child", "--folder", str(folder)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--patch", type=int, nargs=3, default=(48, 48, 48))
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--base", type=int, default=8)
    parser.add_argument("--iters", type=int, default=3)
    parser.add_argument("--ct", type=int, nargs=3, default=(160, 160, 60), help="shape of the prediction CT")
    parser.add_argument(
        "--peak-shape", type=int, nargs=3, default=(512, 512, 300), help="shape of the large CT"
    )
    parser.add_argument("--markdown", type=Path)
    parser.add_argument("--peak-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peak_child:
        _peak_child(args.folder)
        return
    patch = tuple(args.patch)
    lines = [f"torch {torch.__version__}, {torch.get_num_threads()} threads", ""]
    lines += [f"### 3-D training, patch {list(patch)}, batch {args.batch}, base width {args.base}", ""]
    lines += ["| network | step (s) | voxels/s | vs BasicUNet |", "|---|---:|---:|---:|"]
    for row in training(patch, args.batch, args.base, args.iters):
        lines.append(
            f"| {row['network']} | {row['step_s']:.2f} | {row['voxels_per_s']:.0f} | {row['vs_basicunet']:.2f} |"
        )
    with tempfile.TemporaryDirectory() as folder:
        pred = prediction(args.base, patch, Path(folder), tuple(args.ct))
        shape = "×".join(map(str, args.ct))
        lines += ["", f"### Sliding-window prediction ({shape} CT, 1.5×1.5×2.5 mm, LAS, plan at 2 mm)", ""]
        lines += [
            f"hlfnet predict_volume_array {pred['predict_s']:.2f} s, bare sliding_window_inference "
            f"{pred['bare_sliding_window_s']:.2f} s: overhead {100 * pred['overhead']:+.1f} %"
        ]
        peak = peak_memory(tuple(args.peak_shape), Path(folder))
        big = "×".join(map(str, args.peak_shape))
        lines += ["", f"### Peak memory, {big} CT (0.98×0.98×2 mm) with a 3-mm plan", ""]
        lines += [
            f"peak resident {peak['peak_kib'] / 2**20:.2f} GiB (process before predicting: "
            f"{peak['rss_before_kib'] / 2**20:.2f} GiB, imports and network); labels {peak['labels']}"
        ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.markdown:
        args.markdown.write_text(text)


if __name__ == "__main__":
    main()
