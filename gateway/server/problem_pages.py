"""``GET /problems/<code>``: the page each problem ``type`` URI points at (RFC 9457 §3.1.1).

A problem's ``type`` is ``<problem_base_url>/<code>``. By default the base is
``<public_url>/problems``, so the URI names the deployment's own gateway and
dereferences to the catalogue entry served here: JSON (``code``, ``title``,
``status``, ``description``) or, for a browser (``Accept: text/html``), a
small HTML page. ``GET /problems`` lists the whole catalogue. These pages are
public documentation: caller authentication does not apply to them.
"""

from __future__ import annotations

import html
from typing import Any

from aiohttp import web

from gateway.core.problem import CATALOGUE, DESCRIPTIONS
from gateway.core.reserved import PROBLEM_PAGES
from gateway.server.keys import CONFIG


def _entry(base: str, code: str) -> dict[str, Any]:
    status, title = CATALOGUE[code]
    return {
        "type": f"{base}/{code}",
        "code": code,
        "title": title,
        "status": status,
        "description": DESCRIPTIONS[code],
    }


def _wants_html(request: web.Request) -> bool:
    return "text/html" in request.headers.get("Accept", "")


def _html(entries: list[dict[str, Any]]) -> web.Response:
    rows = "".join(
        f'<h2 id="{e["code"]}"><code>{e["code"]}</code> ({e["status"]}): '
        f"{html.escape(e['title'])}</h2><p>{html.escape(e['description'])}</p>"
        for e in entries
    )
    page = (
        '<!doctype html><meta charset="utf-8"><title>Gateway problem types</title>'
        f"<h1>Gateway problem types</h1>{rows}"
    )
    return web.Response(text=page, content_type="text/html")


async def problem_page(request: web.Request) -> web.Response:
    code = request.match_info["code"]
    if code not in CATALOGUE:
        raise web.HTTPNotFound()
    entry = _entry(request.app[CONFIG].problem_base_url, code)
    return _html([entry]) if _wants_html(request) else web.json_response(entry)


async def catalogue(request: web.Request) -> web.Response:
    base = request.app[CONFIG].problem_base_url
    entries = [_entry(base, code) for code in CATALOGUE]
    return _html(entries) if _wants_html(request) else web.json_response(entries)


def add_problem_routes(app: web.Application) -> None:
    """Register before the catch-all proxy route: ``problems`` is a reserved name."""
    app.router.add_get(PROBLEM_PAGES.route, catalogue)
    app.router.add_get(PROBLEM_PAGES.route + "/{code}", problem_page)
