"""Airflow UI plugin: a Models page (nav entry "Models") listing the incidents with their runbooks, then
every model's versions, gate decisions, aliases, the live deployment plan, lineage and the latest drift
reports, and each use case's compliance evidence.

Airflow does not authenticate plugin FastAPI apps: every route here requires a logged-in Airflow
user (the same JWT the UI holds in its cookie, or a Bearer token), like every other page.
The page content is built by pipelines.orchestration.models_page, imported on first request.
"""

from __future__ import annotations

from airflow.api_fastapi.core_api.security import requires_authenticated
from airflow.plugins_manager import AirflowPlugin
from fastapi import Depends, FastAPI, HTTPException
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, PlainTextResponse

PREFIX = "/platform-models"
app = FastAPI(title="Models", dependencies=[Depends(requires_authenticated())])


def _settings():
    from pipelines.settings import get_settings

    return get_settings()


@app.get("/", response_class=HTMLResponse)
def models() -> str:
    from pipelines.orchestration.models_page import render

    return render(_settings())


@app.get("/lineage/{model}/{version}")
def lineage(model: str, version: int) -> JSONResponse:
    from pipelines.errors import RegistryError
    from pipelines.orchestration.models_page import lineage as read

    try:
        return JSONResponse(read(_settings(), model, version))
    except RegistryError as exc:
        raise HTTPException(404, str(exc)) from None


@app.get("/reports/{path:path}")
def report(path: str) -> FileResponse:
    """A gate or drift report, only from the folders the page links to (no path escapes)."""
    from pipelines.orchestration.models_page import report_roots

    settings = _settings()
    target = (settings.data_root / path).resolve()
    if not any(target.is_relative_to(root.resolve()) for root in report_roots(settings)) or not target.is_file():
        raise HTTPException(404, f"no report at {path}")
    return FileResponse(target, media_type="text/html" if target.suffix == ".html" else None)


@app.get("/compliance/{model}", response_class=HTMLResponse)
def compliance(model: str) -> str:
    """The use case's compliance evidence (pipelines/governance/evidence.py), checked as it is built."""
    from pipelines.errors import PlatformError
    from pipelines.governance.evidence import evidence, render_html
    from pipelines.usecases.spec import available

    settings = _settings()
    if model not in available(settings.usecases_dir):
        raise HTTPException(404, f"no use case {model}")
    try:
        return render_html(evidence(settings, model))
    except PlatformError as exc:
        raise HTTPException(409, str(exc)) from None


@app.get("/runbooks/{name}", response_class=PlainTextResponse)
def runbook(name: str) -> str:
    """An incident's runbook (docs/runbooks/<name>.md), by name only."""
    from pipelines.alerting.rules import RUNBOOKS
    from pipelines.settings import REPO_ROOT

    folder = REPO_ROOT / RUNBOOKS
    known = {p.name: p for p in folder.glob("*.md")}
    if name not in known:
        raise HTTPException(404, f"no runbook {name}; known: {sorted(known)}")
    return known[name].read_text()


class ModelsPagePlugin(AirflowPlugin):
    name = "platform_models_page"
    fastapi_apps = [{"app": app, "url_prefix": PREFIX, "name": "Models"}]
    external_views = [{"name": "Models", "href": f"{PREFIX.lstrip('/')}/", "destination": "nav", "url_route": "models"}]
