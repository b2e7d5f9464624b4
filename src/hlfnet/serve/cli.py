"""``hlfnet serve``: parse, check, load the model once, then run the server (:func:`hlfnet.serve.serve`)."""

from __future__ import annotations

import argparse
import os
import sys

from hlfnet.serve.config import ServeConfig, is_loopback


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``hlfnet serve`` to the command line."""
    defaults = ServeConfig()
    p = subparsers.add_parser(
        "serve",
        help="a web page and an HTTP API for segmentation (FastAPI + uvicorn)",
        description="Serve a model: the page at http://HOST:PORT/, the API under /api/v1 (OpenAPI at /docs). "
        "Same preprocessing, weights and masks as `hlfnet predict`. Binds to loopback by default.",
    )
    p.add_argument(
        "--model",
        help="pretrained name, run folder, model.safetensors or model.onnx (default: the shipped pretrained "
        "ISIC HLF-Net, hlfnet-isic2017)",
    )
    p.add_argument(
        "--host", default=defaults.host, help="address to bind (default 127.0.0.1: this machine only)"
    )
    p.add_argument("--port", type=int, default=defaults.port, help="TCP port (default 8000)")
    p.add_argument(
        "--token",
        default=os.environ.get("HLFNET_SERVE_TOKEN"),
        help="require 'Authorization: Bearer TOKEN' on the API (default: $HLFNET_SERVE_TOKEN, else none)",
    )
    p.add_argument("--max-upload-mb", type=float, default=defaults.max_upload_mb, help="largest upload (MiB)")
    p.add_argument(
        "--max-pixels", type=int, help="largest image in pixels (default: $HLFNET_MAX_IMAGE_PIXELS, 100 M)"
    )
    p.add_argument(
        "--max-voxels", type=int, help="largest volume in voxels (default: $HLFNET_MAX_VOLUME_VOXELS, 512 Mi)"
    )
    p.add_argument("--max-batch", type=int, default=defaults.max_batch, help="most images per forward pass")
    p.add_argument(
        "--batch-window-ms",
        type=float,
        default=defaults.batch_window_ms,
        help="wait this long for more images when requests are arriving (default 5)",
    )
    p.add_argument(
        "--queue-size",
        type=int,
        default=defaults.queue_size,
        help="most jobs waiting; then 503 + Retry-After",
    )
    p.add_argument(
        "--max-inflight", type=int, default=defaults.max_inflight, help="most API requests at once; then 503"
    )
    p.add_argument(
        "--request-timeout", type=float, default=defaults.request_timeout_s, help="seconds per request (504)"
    )
    p.add_argument(
        "--memory-budget-mb",
        type=float,
        default=defaults.memory_budget_mb,
        help="most MiB of decoded images/volumes in flight; further requests wait (default 2048)",
    )
    p.add_argument(
        "--max-connections",
        type=int,
        default=defaults.max_connections,
        help="most open connections; more are closed at once (default 1024)",
    )
    p.add_argument(
        "--header-timeout",
        type=float,
        default=defaults.header_timeout_s,
        help="seconds a new connection has to send its request head (default 10)",
    )
    p.add_argument("--tta", action="store_true", help="flip test-time augmentation (as hlfnet predict)")
    p.add_argument("--largest-component", action="store_true", help="keep the largest component per class")
    p.add_argument("--threshold", type=float, default=defaults.threshold, help="binary threshold (0.5)")
    p.add_argument("--device", default=defaults.device, help="torch device (cpu, cuda)")
    p.add_argument("--channels-last", action="store_true", help="channels-last memory format (faster on CPU)")
    p.add_argument("--bf16", action="store_true", help="bfloat16 autocast")
    p.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice)")
    p.add_argument("--log-level", default="info", choices=("critical", "error", "warning", "info", "debug"))
    p.set_defaults(handler=_serve)


def _serve(args: argparse.Namespace) -> int:
    from hlfnet.errors import UserError

    try:
        import fastapi  # noqa: F401
        import python_multipart  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as error:
        raise UserError(
            f"{error.name} is missing; install the serve extra: pip install 'hlfnet[serve]'"
        ) from None
    config = ServeConfig(
        model=args.model,
        host=args.host,
        port=args.port,
        token=args.token or None,
        max_upload_mb=args.max_upload_mb,
        max_pixels=args.max_pixels,
        max_voxels=args.max_voxels,
        max_batch=args.max_batch,
        batch_window_ms=args.batch_window_ms,
        queue_size=args.queue_size,
        max_inflight=args.max_inflight,
        request_timeout_s=args.request_timeout,
        memory_budget_mb=args.memory_budget_mb,
        max_connections=args.max_connections,
        header_timeout_s=args.header_timeout,
        tta=args.tta,
        largest_component=args.largest_component,
        threshold=args.threshold,
        device=args.device,
        channels_last=args.channels_last,
        bf16=args.bf16,
    )
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if not is_loopback(config.host):
        what = (
            "anyone who can reach it must send the token; traffic is plain HTTP (put TLS in front)"
            if config.token
            else "it has NO authentication: anyone who can reach it can use it (add --token, or bind 127.0.0.1)"
        )
        print(
            f"hlfnet serve: warning: listening on {config.host}, not only this machine; {what}",
            file=sys.stderr,
        )

    from hlfnet.serve.server import serve
    from hlfnet.serve.service import default_model, load_predictor

    reference = config.model or default_model()
    predictor = load_predictor(config)
    url_host = f"[{config.host}]" if ":" in config.host else config.host
    print(
        f"hlfnet serve: {predictor.source.get('model') or reference} on http://{url_host}:{config.port}/ "
        f"(API docs: /docs; Ctrl-C stops)",
        file=sys.stderr,
        flush=True,
    )
    serve(config, predictor, reference, log_level=args.log_level)
    return 0
