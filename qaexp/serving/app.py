"""The FastAPI application: POST /predict (and POST /, where Inference API clients send), GET /health and the page
at GET /."""

import contextlib
import logging
import os
from dataclasses import dataclass
from importlib import resources

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.exceptions import HTTPException

from qaexp.serving.batcher import RequestBatcher, ServiceBusy, ServiceStopping
from qaexp.serving.payload import Limits, RequestError, parse_predict_body, reply

log = logging.getLogger(__name__)


@dataclass
class Service:
    """What the app serves: a loaded model with its settings (model/saved.SavedModel), and how requests reach it."""

    saved: object
    limits: Limits
    batcher: RequestBatcher


def page_html() -> str:
    return resources.files("qaexp.serving").joinpath("page.html").read_text(encoding="utf-8")


def create_app(service: Service) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app):
        await service.batcher.start()
        yield
        await service.batcher.stop()

    app = FastAPI(title="qaexp question answering", lifespan=lifespan, docs_url=None, redoc_url=None)
    page = page_html()

    add_error_handlers(app)

    @app.get("/", response_class=HTMLResponse)
    async def index():
        return HTMLResponse(page)

    @app.get("/health")
    async def health():
        return {"status": "ok", **model_description(service), "batching": service.batcher.batching,
                "pending_requests": service.batcher.pending, **service.batcher.stats.as_dict()}

    # huggingface_hub's InferenceClient(model="http://HOST:PORT") posts to the URL as given, i.e. to /; Hugging
    # Face's inference toolkit answers there too. GET / stays the page.
    @app.post("/")
    @app.post("/predict")
    async def predict(request: Request):
        parsed = parse_predict_body(await request.body(), service.limits, service.saved.settings)
        try:
            ranked = await service.batcher.answer(parsed.questions)
        except ServiceBusy as err:
            return JSONResponse({"error": f"the service is busy: {err}"}, status_code=503)
        except ServiceStopping as err:
            return JSONResponse({"error": f"the service is stopping and did not answer: {err}; send the request "
                                          "again once it runs again"}, status_code=503)
        except Exception as err:
            return JSONResponse({"error": f"answering failed: {type(err).__name__}: {err}"}, status_code=500)
        return JSONResponse(reply(parsed, ranked))

    return app


def add_error_handlers(app: FastAPI) -> None:
    """Every refusal as one line, {"error": ...}: qaexp's own (RequestError) and FastAPI's."""
    @app.exception_handler(RequestError)
    async def request_error(request, err: RequestError):
        return JSONResponse({"error": err.message}, status_code=err.status)

    # FastAPI's own refusals (no such path, a method a path does not take) in the same one-line body as qaexp's,
    # not FastAPI's {"detail": ...}, so that a client reads one shape of error whatever refused it.
    @app.exception_handler(HTTPException)
    async def http_error(request, err: HTTPException):
        allowed = (err.headers or {}).get("Allow")
        message = {404: f"no such path {request.url.path}: POST /predict (or /), GET /health, GET / (the page)",
                   405: f"{request.method} {request.url.path} is not allowed"
                        + (f": use {allowed}" if allowed else "")}.get(err.status_code, str(err.detail))
        return JSONResponse({"error": message}, status_code=err.status_code, headers=err.headers)


def model_description(service: Service) -> dict:
    settings, model_dir = service.saved.settings, service.saved.model_dir
    return {"model": os.path.basename(os.path.dirname(os.path.abspath(model_dir))) + "/"
            + os.path.basename(os.path.abspath(model_dir)),
            "model_type": service.saved.model.hf_config.get("model_type"),
            "max_length": settings.max_length, "doc_stride": settings.doc_stride,
            "max_answer_length": settings.max_answer_length,
            "version_2_with_negative": bool(settings.version_2_with_negative),
            "null_score_diff_threshold": settings.null_score_diff_threshold,
            "max_context_chars": service.limits.max_context_chars, "max_inputs": service.limits.max_inputs}
