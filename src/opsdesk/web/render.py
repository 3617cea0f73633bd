"""Rendering helpers for HTML pages."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse

from opsdesk import __version__
from opsdesk.web.deps import Ctx


def render(
    request: Request, ctx: Ctx | None, template: str, status_code: int = 200, **context: Any
) -> HTMLResponse:
    templates = request.app.state.templates
    context.setdefault("flash", request.query_params.get("flash"))
    context.setdefault("flash_kind", request.query_params.get("kind", "ok"))
    now = ctx.now() if ctx else request.app.state.clock.now()
    return templates.TemplateResponse(
        request,
        template,
        {"ctx": ctx, "version": __version__, "now": now, **context},
        status_code=status_code,
    )


def back(url: str, flash: str | None = None, kind: str = "ok") -> RedirectResponse:
    """Redirect after a form post (303, so the browser follows with GET)."""
    from urllib.parse import urlencode

    if flash:
        sep = "&" if "?" in url else "?"
        url = f"{url}{sep}{urlencode({'flash': flash, 'kind': kind})}"
    return RedirectResponse(url, status_code=303)
