"""The ASGI application of ``hlfnet serve``: the page, the JSON/PNG API, limits, errors and the batcher.

Every error is one line of JSON, ``{"error": {"code": ..., "message": ...}}``, never a stack trace. Uploads are
streamed into a private temporary folder (one sub-folder per request, removed when the request ends; the whole
folder when the server stops). CORS is off: no ``Access-Control-Allow-*`` header is ever sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import numpy as np
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from hlfnet.serve.batcher import MicroBatcher, QueueFull
from hlfnet.serve.budget import MemoryBudget
from hlfnet.serve.config import ServeConfig
from hlfnet.serve.docs import docs_csp, find_swagger_ui, missing_docs_html
from hlfnet.serve.encoding import b64, png_bytes
from hlfnet.serve.redact import public_text
from hlfnet.serve.scoring import score_uploads, truth_pictures
from hlfnet.serve.service import ImageJob, ModelService, display_image, load_predictor
from hlfnet.serve.uploads import ApiError, Upload, check_image, decoded_bytes, read_multipart

__all__ = ["create_app", "ServeState", "API_PREFIX"]

logger = logging.getLogger(__name__)

API_PREFIX = "/api/v1"
PAGE_CSP = (
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
#: Everything that is not the page or /docs (JSON, PNG, NIfTI, /openapi.json, errors): nothing may run or load.
DATA_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"


@dataclass
class ServeState:
    """What the running server shares between requests (``app.state.serve``)."""

    config: ServeConfig
    budget: MemoryBudget = field(init=False)
    service: ModelService | None = None
    batcher: MicroBatcher | None = None
    folder: Path | None = None
    inflight: int = 0
    preparing: int = 0
    draining: bool = False
    started: float = field(default_factory=time.time)
    requests: int = 0

    docs_csp: str = PAGE_CSP

    def __post_init__(self) -> None:
        self.budget = MemoryBudget(self.config.memory_budget_bytes)

    @property
    def ready(self) -> bool:
        return (
            self.service is not None
            and self.batcher is not None
            and self.batcher.running
            and not self.draining
        )

    @contextlib.contextmanager
    def preparing_request(self) -> Any:
        """Count a request as on its way to the batcher until it calls the yielded ``submitted()``."""
        self.preparing += 1
        pending = [True]

        def submitted() -> None:
            if pending[0]:
                pending[0] = False
                self.preparing -= 1

        try:
            yield submitted
        finally:
            submitted()

    @contextlib.contextmanager
    def private_folder(self) -> Any:
        assert self.folder is not None
        folder = self.folder / uuid.uuid4().hex
        folder.mkdir(mode=0o700)
        try:
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    async def run(self, kind: str, payload: Any) -> tuple[Any, Any]:
        """Queue a job on the batcher and wait for it (503 + Retry-After when the queue is full)."""
        if self.batcher is None or not self.batcher.running:
            raise ApiError(503, "not_ready", "the model is not loaded yet", {"Retry-After": "1"})
        try:
            future = self.batcher.submit(kind, payload)
        except QueueFull:
            raise ApiError(
                503,
                "queue_full",
                "the server is busy (inference queue full); retry shortly",
                {"Retry-After": "1"},
            ) from None
        return await future


# ------------------------------------------------------------------------------------------------ middleware


def _json_error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    # a library's message may name a server path: only its file name reaches the client
    return JSONResponse(
        {"error": {"code": code, "message": public_text(message)}}, status_code=status, headers=headers
    )


class Guard:
    """Pure ASGI middleware: security headers, bearer token, draining and the in-flight limit on ``/api/``."""

    def __init__(self, app: Any, state: ServeState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        page = path == "/" or path.startswith("/static/")
        policy = self.state.docs_csp if path == "/docs" else PAGE_CSP if page else DATA_CSP

        async def send_with_headers(message: dict[str, Any]) -> None:
            # every answer, the page, /docs, /openapi.json, the API and errors alike, may not be framed
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"),
                    (b"content-security-policy", policy.encode()),
                    (b"x-frame-options", b"DENY"),
                ]
                message = {**message, "headers": headers}
            await send(message)

        if not path.startswith("/api/"):
            await self.app(scope, receive, send_with_headers)
            return
        state = self.state
        error = None
        token = state.config.token
        if token is not None:
            given = dict(scope.get("headers", [])).get(b"authorization", b"")
            if not hmac.compare_digest(given, f"Bearer {token}".encode("ascii")):
                error = _json_error(
                    401,
                    "unauthorized",
                    "this server needs a bearer token (Authorization: Bearer <token>)",
                    {"WWW-Authenticate": "Bearer"},
                )
        if error is None and state.draining:
            error = _json_error(503, "shutting_down", "the server is shutting down", {"Connection": "close"})
        if error is None and state.inflight >= state.config.max_inflight:
            error = _json_error(
                503, "busy", "too many requests in progress; retry shortly", {"Retry-After": "1"}
            )
        if error is not None:
            await error(scope, receive, send_with_headers)
            return
        state.inflight += 1
        state.requests += 1
        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            state.inflight -= 1


# ------------------------------------------------------------------------------------------------ helpers


def _stem(name: str) -> str:
    stem = re.sub(r"(\.nii\.gz|\.[A-Za-z0-9]{1,5})$", "", name) or "upload"
    return re.sub(r"[^A-Za-z0-9._-]", "_", stem)[:80]


def _area_image(mask: np.ndarray, spacing: list[float] | None, num_classes: int) -> dict[str, Any]:
    pixels = int((mask > 0).sum())
    area: dict[str, Any] = {
        "pixels": pixels,
        "fraction": pixels / mask.size,
        "mm2": pixels * spacing[0] * spacing[1] if spacing else None,
        "pixel_spacing_mm": spacing,
        "spacing_source": "file resolution (DPI)" if spacing else None,
    }
    if num_classes > 2:
        area["pixels_per_class"] = {str(k): int((mask == k).sum()) for k in range(1, num_classes)}
    return area


def _area_volume(labels: np.ndarray, zooms: list[float] | None) -> dict[str, Any]:
    voxels = int((labels > 0).sum())
    voxel_mm3 = float(np.prod(zooms)) if zooms else None
    return {
        "voxels": voxels,
        "fraction": voxels / labels.size,
        "ml": voxels * voxel_mm3 / 1000.0 if voxel_mm3 else None,
        "voxel_size_mm": zooms,
    }


def _strip(text: str, folder: Path, uploads: dict[str, Upload]) -> str:
    for upload in uploads.values():
        text = text.replace(str(upload.path), upload.name)
    return text.replace(str(folder), "").splitlines()[0][:300] if text else "cannot predict this file"


def _upload_schema(fields: dict[str, str]) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            name: {"type": "string", "format": "binary", "description": text}
                            for name, text in fields.items()
                        },
                        "required": [next(iter(fields))],
                    }
                }
            },
        }
    }


ERROR_SCHEMA = {
    "description": "error",
    "content": {
        "application/json": {
            "example": {"error": {"code": "upload_too_large", "message": "upload exceeds the 64 MiB limit"}}
        }
    },
}


# ------------------------------------------------------------------------------------------------ app


def create_app(config: ServeConfig, predictor: Any = None, reference: str | None = None) -> Any:
    """The FastAPI application.

    Args:
        config: the serving settings.
        predictor: an already built :class:`~hlfnet.evaluation.Predictor` (the CLI loads it before binding so
            that a bad ``--model`` fails at once); ``None`` = load ``config.model`` at startup.
        reference: what ``predictor`` was built from (reported by ``/api/v1/models``).

    Returns:
        A ``fastapi.FastAPI`` app; run it with uvicorn (:func:`hlfnet.serve.serve` does).
    """
    state = ServeState(config)

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        state.folder = Path(tempfile.mkdtemp(prefix="hlfnet-serve-"))
        try:
            built = predictor if predictor is not None else await asyncio.to_thread(load_predictor, config)
            state.service = ModelService(built, reference or config.model or "")
            state.batcher = MicroBatcher(
                state.service.process,
                max_batch=config.max_batch,
                window_ms=config.batch_window_ms,
                queue_size=config.queue_size,
                incoming=lambda: state.preparing,
            )
            await state.batcher.start()
            logger.info("serving %s", state.service.describe()["name"])
            yield
        finally:
            state.draining = True
            if state.batcher is not None:
                await state.batcher.stop()
            shutil.rmtree(state.folder, ignore_errors=True)

    swagger = find_swagger_ui()
    app = FastAPI(
        title="hlfnet serve",
        version=_version(),
        summary="HLF-Net segmentation: a web page and an HTTP API (same preprocessing, weights and metrics as "
        "`hlfnet predict`).",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.serve = state
    app.add_middleware(Guard, state=state)

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, error: ApiError) -> Response:
        return _json_error(error.status, error.code, error.message, error.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, error: RequestValidationError) -> Response:
        first = error.errors()[0] if error.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("query", "body"))
        return _json_error(422, "invalid_parameter", f"{where}: {first.get('msg', 'invalid value')}")

    @app.exception_handler(HTTPException)
    async def _http(request: Request, error: HTTPException) -> Response:
        codes = {404: "not_found", 405: "method_not_allowed"}
        return _json_error(
            error.status_code, codes.get(error.status_code, "http_error"), str(error.detail), error.headers
        )

    @app.exception_handler(Exception)
    async def _internal(request: Request, error: Exception) -> Response:
        logger.error("internal error on %s: %s", request.url.path, error, exc_info=error)
        return _json_error(500, "internal", "internal server error; the server log has the details")

    static = Path(str(resources.files("hlfnet.serve") / "static"))
    if swagger:
        from fastapi.openapi.docs import get_swagger_ui_html

        app.mount("/static/swagger", StaticFiles(directory=swagger.folder), name="swagger")
        docs_page: Response = get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="hlfnet serve: API",
            swagger_js_url="/static/swagger/swagger-ui-bundle.js",
            swagger_css_url="/static/swagger/swagger-ui.css",
            swagger_favicon_url="/static/favicon.svg",
            # no badge from the online validator: the page talks to this server only
            swagger_ui_parameters={"validatorUrl": None},
        )
    else:  # a local page that says what to install, never a CDN
        from fastapi.responses import HTMLResponse

        docs_page = HTMLResponse(missing_docs_html())
    state.docs_csp = docs_csp(PAGE_CSP, bytes(docs_page.body).decode("utf-8"))

    @app.get("/docs", include_in_schema=False)
    async def docs() -> Response:
        return docs_page

    app.mount("/static", StaticFiles(directory=static), name="static")

    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
    async def page() -> Response:
        return FileResponse(static / "index.html", media_type="text/html")

    @app.get("/healthz", tags=["health"], summary="Liveness: the process answers")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok"}

    @app.get(
        "/readyz",
        tags=["health"],
        summary="Readiness: the model is loaded and the server is not shutting down",
        responses={503: ERROR_SCHEMA},
    )
    async def readyz() -> Response:
        if not state.ready:
            reason = "shutting down" if state.draining else "model not loaded"
            return _json_error(503, "not_ready", reason, {"Retry-After": "1"})
        return JSONResponse(
            {
                "status": "ready",
                "queue": state.batcher.depth if state.batcher else 0,
                "inflight": state.inflight,
            }
        )

    @app.get(f"{API_PREFIX}/models", tags=["api"], summary="The loaded model, its options and manifest")
    async def models() -> dict[str, Any]:
        from hlfnet.pretrained import list_pretrained

        if state.service is None:
            raise ApiError(503, "not_ready", "the model is not loaded yet", {"Retry-After": "1"})
        return {
            "models": [{**state.service.describe(), "loaded": True}],
            "pretrained_installed": list_pretrained(),
            "limits": {
                "max_upload_mb": config.max_upload_mb,
                "max_pixels": config.pixel_limit,
                "max_voxels": config.voxel_limit,
                "max_batch": config.max_batch,
                "queue_size": config.queue_size,
                "request_timeout_s": config.request_timeout_s,
                "memory_budget_mb": config.memory_budget_mb,
            },
        }

    async def read_uploads(request: Request, folder: Path, fields: tuple[str, ...]) -> dict[str, Upload]:
        """The request's multipart ``fields``, streamed into ``folder`` within the upload limit."""
        return await read_multipart(
            request.headers.get("content-type"),
            request.headers.get("content-length"),
            request.stream(),
            folder,
            fields,
            config.max_upload_bytes,
        )

    async def guarded(request: Request, work: Awaitable[Response]) -> Response:
        try:
            return await asyncio.wait_for(work, config.request_timeout_s)
        except asyncio.TimeoutError:
            raise ApiError(
                504, "timeout", f"the request took longer than {config.request_timeout_s:g} s"
            ) from None
        except ClientDisconnect:
            logger.info("client went away during the upload")
            return Response(status_code=400)

    @app.post(
        f"{API_PREFIX}/predict",
        tags=["api"],
        summary="Segment an image (PNG, JPEG, BMP, TIFF) or a NIfTI volume",
        description="Multipart upload, field `file` (and optionally `ground_truth`, to get Dice/Jaccard/accuracy "
        "in JSON). Answers the mask as PNG (images: 0/255 at the image's size, exactly what `hlfnet predict` "
        "writes) or NIfTI (volumes: labels with the input's affine), or JSON (`format=json`) with the mask in "
        "base64, the area, timings and, on request, probabilities, attention maps and a preview.",
        openapi_extra=_upload_schema(
            {
                "file": "the image or NIfTI volume",
                "ground_truth": "optional mask / label volume to score against",
            }
        ),
        responses={
            200: {
                "content": {"image/png": {}, "application/gzip": {}, "application/json": {}},
                "description": "the mask (PNG / NIfTI) or JSON",
            },
            400: ERROR_SCHEMA,
            413: ERROR_SCHEMA,
            415: ERROR_SCHEMA,
            503: ERROR_SCHEMA,
            504: ERROR_SCHEMA,
        },
    )
    async def predict(
        request: Request,
        format: Literal["png", "nifti", "json"] | None = Query(
            None, description="png (images) / nifti (volumes) by default; json for everything"
        ),
        probabilities: bool = Query(
            False, description="JSON: add the foreground probability map (PNG, 255·p)"
        ),
        attention: bool = Query(False, description="JSON, images, HLF-Net: add the Fig. 4 LFE/HFE maps"),
        preview: bool = Query(
            False, description="JSON: add the image (volumes: every slice) as PNG for display"
        ),
    ) -> Response:
        return await guarded(request, _predict(request, format, probabilities, attention, preview))

    async def _predict(
        request: Request, format: str | None, probabilities: bool, attention: bool, preview: bool
    ) -> Response:
        with state.preparing_request() as submitted, state.private_folder() as folder:
            uploads = await read_uploads(request, folder, ("file", "ground_truth"))
            upload = uploads.get("file")
            if upload is None:
                raise ApiError(400, "missing_file", "no 'file' field in the upload")
            truth = uploads.get("ground_truth")
            if upload.kind == "image" and format == "nifti":
                raise ApiError(400, "bad_format", "an image's mask is PNG: use format=png or json")
            if upload.kind == "volume" and format == "png":
                raise ApiError(400, "bad_format", "a volume's mask is NIfTI: use format=nifti or json")
            needed = await asyncio.to_thread(decoded_bytes, uploads, config.pixel_limit, config.voxel_limit)
            async with state.budget.reserve(needed):  # nothing is decoded before its memory is free
                if upload.kind == "image":
                    array = await asyncio.to_thread(check_image, upload, config.pixel_limit)
                    submitted()
                    job = ImageJob(array, probabilities, attention)
                    result, info = await _infer("image", job, folder, uploads)
                    return await asyncio.to_thread(
                        _image_response, result, info, upload, truth, array, folder, format, preview
                    )
                submitted()
                result, info = await _infer("volume", upload.path, folder, uploads)
                return await asyncio.to_thread(
                    _volume_response, result, info, upload, truth, folder, format, probabilities, preview
                )

    async def _infer(kind: str, payload: Any, folder: Path, uploads: dict[str, Upload]) -> tuple[Any, Any]:
        try:
            return await state.run(kind, payload)
        except (ValueError, FileNotFoundError) as error:
            raise ApiError(400, "cannot_predict", _strip(str(error), folder, uploads)) from None

    def _image_response(
        result: Any,
        info: Any,
        upload: Upload,
        truth: Upload | None,
        array: np.ndarray,
        folder: Path,
        format: str | None,
        preview: bool,
    ) -> Response:
        from hlfnet.evaluation.predictor import write_mask_png

        service = state.service
        assert service is not None
        num_classes = service.predictor.num_classes
        # the very bytes hlfnet predict writes, in the run's encoding (data.label_values) when it has one
        mask_file = write_mask_png(
            result.mask, folder / "mask.png", num_classes, label_values=service.scoring.label_values
        )
        data = mask_file.read_bytes()
        area = _area_image(result.mask, upload.meta.get("pixel_spacing_mm"), num_classes)
        timing = {"queue_ms": round(info.queue_ms, 2), "inference_ms": round(info.run_ms, 2)}
        name = f"{_stem(upload.name)}_mask.png"
        if format in (None, "png"):
            return Response(
                data,
                media_type="image/png",
                headers={
                    "Content-Disposition": f'attachment; filename="{name}"',
                    "X-Area-Pixels": str(area["pixels"]),
                    "X-Batch-Size": str(info.batch_size),
                    "X-Inference-Ms": f"{info.run_ms:.2f}",
                },
            )
        body: dict[str, Any] = {
            "name": upload.name,
            "kind": "image",
            "model": service.describe()["name"],
            "size": upload.meta["size"],
            "mask_filename": name,
            "mask_png": b64(data),
            "labels_png": b64(png_bytes(result.mask.astype(np.uint8))),  # class indices, for display
            "area": area,
            "batch_size": info.batch_size,
            "timing": timing,
        }
        if result.probabilities is not None:
            p = result.probabilities
            foreground = p[0] if p.shape[0] == 1 else 1.0 - p[0]
            body["probabilities_png"] = b64(
                png_bytes(np.rint(np.clip(foreground, 0, 1) * 255).astype(np.uint8))
            )
        if result.attention is not None:
            body["attention"] = result.attention
        if preview:
            body["image_png"] = b64(png_bytes(display_image(array)))
        if truth is not None:
            body.update(_score_against(mask_file, upload, truth, "image"))
        return JSONResponse(body)

    def _score_against(mask_file: Path, upload: Upload, truth: Upload, kind: str) -> dict[str, Any]:
        if truth.kind != kind:
            raise ApiError(
                400,
                "mismatch",
                f"the ground truth must be {'a mask image' if kind == 'image' else 'a NIfTI volume'}",
            )
        prediction = Upload("prediction", upload.name, mask_file, kind=kind)
        assert state.service is not None
        answer, _ = score_uploads(prediction, truth, config.pixel_limit, state.service.scoring)
        return answer

    def _volume_response(
        result: Any,
        info: Any,
        upload: Upload,
        truth: Upload | None,
        folder: Path,
        format: str | None,
        probabilities: bool,
        preview: bool,
    ) -> Response:
        from hlfnet.data import slices_to_volume

        service = state.service
        assert service is not None
        mask_file = slices_to_volume(result.labels, upload.path, folder / "mask.nii.gz")
        data = Path(mask_file).read_bytes()
        area = _area_volume(result.labels, upload.meta.get("voxel_size_mm"))
        name = f"{_stem(upload.name)}_mask.nii.gz"
        if format in (None, "nifti"):
            return Response(
                data,
                media_type="application/gzip",
                headers={
                    "Content-Disposition": f'attachment; filename="{name}"',
                    "X-Area-Voxels": str(area["voxels"]),
                    "X-Inference-Ms": f"{info.run_ms:.2f}",
                },
            )
        body: dict[str, Any] = {
            "name": upload.name,
            "kind": "volume",
            "model": service.describe()["name"],
            "shape": upload.meta["shape"],
            "slices": int(result.labels.shape[0]),
            "mask_filename": name,
            "mask_nifti": b64(data),
            "area": area,
            "timing": {"queue_ms": round(info.queue_ms, 2), "inference_ms": round(info.run_ms, 2)},
        }
        if preview or probabilities:
            body["slice_previews"] = _slice_previews(result, upload, probabilities, preview)
        if truth is not None:
            body.update(_score_against(Path(mask_file), upload, truth, "volume"))
        return JSONResponse(body)

    def _slice_previews(
        result: Any, upload: Upload, probabilities: bool, preview: bool
    ) -> list[dict[str, Any]]:
        from hlfnet.data import load_volume
        from hlfnet.data.preprocess import normalize_volume, reorient_to_slices

        assert state.service is not None
        images = None
        if preview:
            volume, meta = load_volume(upload.path)
            volume = volume[..., 0] if volume.ndim == 4 else volume
            images = normalize_volume(
                reorient_to_slices(volume, meta.affine), state.service.predictor.cfg.ct_window
            )
        out = []
        for k in range(result.labels.shape[0]):
            item: dict[str, Any] = {
                "mask_png": b64(png_bytes((result.labels[k] > 0).astype(np.uint8) * 255)),
                "labels_png": b64(png_bytes(np.ascontiguousarray(result.labels[k]).astype(np.uint8))),
                "pixels": int((result.labels[k] > 0).sum()),
            }
            if images is not None:
                item["image_png"] = b64(png_bytes(np.rint(images[..., k] * 255).astype(np.uint8)))
            if probabilities:
                p = result.probabilities[k]
                foreground = p[0] if p.shape[0] == 1 else 1.0 - p[0]
                item["probabilities_png"] = b64(png_bytes(np.rint(foreground * 255).astype(np.uint8)))
            out.append(item)
        return out

    @app.post(
        f"{API_PREFIX}/score",
        tags=["api"],
        summary="Score a predicted mask against a ground truth: Dice, IoU, HD95, ASSD, NSD, overall and per class",
        description="Multipart fields `prediction` and `ground_truth`: two 2-D masks of the same size, or two NIfTI "
        "label volumes of the same shape, in the served model's encoding (binary: {0, 1} or {0, 255}, any "
        "non-zero label of a volume; multi-class: class indices, or the run's `data.label_values`). Scores as "
        "`hlfnet score` (`hlfnet.evaluation.score_labels`): `scores` holds the ISIC metrics (multi-class: the "
        "mean over the foreground classes) and HD95 / ASSD / NSD (MONAI's; pixels for images, mm for volumes, "
        "NSD tolerance 1; `null` for a class in neither mask); `per_class` one entry per foreground class.",
        openapi_extra=_upload_schema({"prediction": "predicted mask", "ground_truth": "ground-truth mask"}),
        responses={400: ERROR_SCHEMA, 413: ERROR_SCHEMA, 415: ERROR_SCHEMA},
    )
    async def score(
        request: Request,
        labels: bool = Query(
            False,
            description="add the ground truth as class indices (PNG, base64) for drawing its outline: "
            "`ground_truth_png` (images) or `ground_truth_slices` (volumes, the axial slices of the page)",
        ),
        surface: bool = Query(True, description="compute HD95, ASSD and NSD (false: overlap metrics only)"),
    ) -> Response:
        return await guarded(request, _score(request, labels, surface))

    async def _score(request: Request, labels: bool, surface: bool) -> Response:
        with state.private_folder() as folder:
            uploads = await read_uploads(request, folder, ("prediction", "ground_truth"))
            missing = [f for f in ("prediction", "ground_truth") if f not in uploads]
            if missing:
                raise ApiError(400, "missing_file", f"no {missing[0]!r} field in the upload")
            if state.service is None:
                raise ApiError(503, "not_ready", "the model is not loaded yet", {"Retry-After": "1"})
            rule = state.service.scoring
            needed = await asyncio.to_thread(decoded_bytes, uploads, config.pixel_limit, config.voxel_limit)
            async with state.budget.reserve(needed):

                def work() -> dict[str, Any]:
                    truth = uploads["ground_truth"]
                    answer, truth_labels = score_uploads(
                        uploads["prediction"], truth, config.pixel_limit, rule, surface
                    )
                    return {**answer, **(truth_pictures(truth, truth_labels) if labels else {})}

                body = await asyncio.to_thread(work)
            return JSONResponse(body)

    return app


def _version() -> str:
    from hlfnet.version import __version__

    return __version__
