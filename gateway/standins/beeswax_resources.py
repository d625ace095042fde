"""The resources of the Beeswax stand-in: 0.5 envelope and 2.0 paged (see :mod:`.beeswax`).

Handlers here return ``(status, body)``; a ``None`` body means an empty reply.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

Obj = dict[str, Any]
Reply = tuple[int, Any]
# 0.5 resource -> (id field, required field)
RESOURCES = {
    "advertiser": ("advertiser_id", "advertiser_name"),
    "campaign": ("campaign_id", "campaign_name"),
    "user": ("user_id", "email"),
}
NOTHING = {
    "success": False,
    "payload": "Nothing found or problem with the query",
    "errors": ["ERROR: Nothing found matching those criteria"],
}
DEPRECATED = "WARNING: alternative_id is deprecated"
BAD_JSON = object()  # stands for a request body that is not JSON


@dataclass
class State:
    sessions: dict[str, tuple[str, float]] = field(default_factory=dict)  # value -> email, expiry
    remember: dict[str, tuple[str, float]] = field(default_factory=dict)
    logins: dict[str, deque[float]] = field(default_factory=dict)  # email -> attempt times
    reports: dict[str, deque[float]] = field(default_factory=dict)  # tenant -> call times
    store: dict[str, dict[int, Obj]] = field(default_factory=dict)  # 0.5 resource -> id -> obj
    v2: dict[str, dict[int, Obj]] = field(default_factory=dict)  # 2.0 resource -> id -> obj
    calls: int = 0
    report_id: int = 0


STATE = web.AppKey("beeswax_state", State)


def seed(state: State, campaigns: int) -> None:
    for i in range(1, 4):
        state.store.setdefault("advertiser", {})[i] = {
            "advertiser_id": i, "advertiser_name": f"Advertiser {i}", "alternative_id": None
        }  # fmt: skip
        state.store.setdefault("campaign", {})[i] = {
            "campaign_id": i, "campaign_name": f"Campaign {i}", "advertiser_id": i
        }  # fmt: skip
        state.store.setdefault("user", {})[i] = {"user_id": i, "email": f"user{i}@example.com"}
        state.v2.setdefault("advertisers", {})[i] = {"id": i, "name": f"Advertiser {i}"}
    state.v2["campaigns"] = {
        i: {"id": i, "name": f"Campaign {i}", "advertiser_id": 1 + i % 3}
        for i in range(1, campaigns + 1)
    }


def _same(a: Any, b: Any) -> bool:
    return bool(a == b or str(a).lower() == str(b).lower())


def v05(request: web.Request, parts: list[str], body: Any) -> Reply:
    method, name = request.method, parts[0]
    if name == "forbidden_thing":
        return 403, {"success": False, "errors": ["ERROR: You do not have access to this element"]}
    if name == "account":
        return _v05_account(method, parts)
    strict = parts[1:] == ["strict"]
    if name not in RESOURCES or (len(parts) > 1 and not strict):
        return 404, {"success": False, "errors": [f"ERROR: element {'/'.join(parts)} not found"]}
    if body is BAD_JSON:
        return 400, {"success": False, "errors": ["ERROR: request body is not valid JSON"]}
    table, (id_field, required) = request.app[STATE].store[name], RESOURCES[name]
    if method == "GET":
        filters = {**request.query, **(body if isinstance(body, dict) else {})}
        found = [o for o in table.values() if all(_same(o.get(k), v) for k, v in filters.items())]
        return (200, {"success": True, "payload": found}) if found else (200, NOTHING)
    if method not in ("POST", "PUT", "DELETE"):
        return 400, {"success": False, "errors": [f"ERROR: method {method} not supported"]}
    if method == "DELETE" and body is None and id_field in request.query:
        body = {id_field: request.query[id_field]}
    if isinstance(body, list):
        status, data = _bulk(method, name, table, id_field, body)
    elif not isinstance(body, dict):
        return 400, {"success": False, "errors": ["ERROR: request body must be a JSON object"]}
    elif method == "POST":
        if body.get(required) in (None, ""):
            return 406, {"success": False, "payload": "Problem with the request", "errors": [
                f"ERROR: {required} is required"
            ]}  # fmt: skip
        new_id = max(table, default=0) + 1
        table[new_id] = {**body, id_field: new_id}
        status, data = (
            200,
            {"success": True, "payload": f"{name} created with ID {new_id}", "id": new_id},
        )
    else:
        status, data = _bulk(method, name, table, id_field, [body])
        if data["payload"][0]["success"]:
            verb = "updated" if method == "PUT" else "deleted"
            ident = data["payload"][0]["id"]
            data = {"success": True, "payload": f"{name} {verb} with ID {ident}", "id": ident}
        else:
            item = data["payload"][0]
            return item["error_code"], {"success": False, "errors": item["message"]}
    if method in ("POST", "PUT") and any(o.get("alternative_id") is not None for o in _objs(body)):
        data["errors"] = [*data.get("errors", []), DEPRECATED]
    warnings = [e for e in data.get("errors", []) if e.startswith("WARNING:")]
    if strict and warnings and data["success"]:
        return 409, {"success": False, "errors": warnings}
    return status, data


def _v05_account(method: str, parts: list[str]) -> Reply:
    if method != "GET" or len(parts) > 1:
        return 405, {
            "success": False,
            "errors": ["ERROR: method not allowed on read-only element"],
        }
    return 200, {"success": True, "payload": [{"account_id": 1, "account_name": "Standin"}]}


def _objs(body: Any) -> list[Obj]:
    items = body if isinstance(body, list) else [body]
    return [o for o in items if isinstance(o, dict)]


def _bulk(method: str, name: str, table: dict[int, Obj], id_field: str, items: list[Any]) -> Reply:
    if not items:
        return 406, {"success": False, "errors": ["ERROR: no objects given"]}
    results: list[Obj] = []
    for item in items:
        raw = item.get(id_field) if isinstance(item, dict) else None
        try:
            ident: Any = int(raw) if raw is not None else None
        except (TypeError, ValueError):
            ident = raw
        if ident is None:
            results.append({"id": None, "success": False, "error_code": 406, "message": [
                f"ERROR: {id_field} is required"
            ]})  # fmt: skip
        elif ident not in table:
            results.append({"id": ident, "success": False, "error_code": 404, "message": [
                f"ERROR: {name} {ident} not found"
            ]})  # fmt: skip
        else:
            if method == "PUT":
                table[ident] = {**table[ident], **item, id_field: ident}
            else:
                del table[ident]
            warn = (
                [DEPRECATED] if method == "PUT" and item.get("alternative_id") is not None else []
            )
            results.append({"id": ident, "success": True, "error_code": None, "message": warn})
    failed = sum(1 for r in results if not r["success"])
    errors = [f"ERROR: {failed} of {len(results)} objects failed"] if failed else []
    return 200, {"success": failed < len(results), "payload": results, "errors": errors}


def v2(request: web.Request, parts: list[str], body: Any) -> Reply:
    method = request.method
    table = request.app[STATE].v2.get(parts[0])
    if table is None or len(parts) > 2:
        return 404, {"detail": "Not found."}
    if len(parts) == 2:
        ident = int(parts[1]) if parts[1].isdigit() else -1
        if ident not in table:
            return 404, {"detail": "Not found."}
        if method == "GET":
            return 200, table[ident]
        if method == "DELETE":
            del table[ident]
            return 204, None
        if method not in ("PUT", "PATCH"):
            return 405, {"detail": f'Method "{method}" not allowed.'}
    elif method == "GET":
        return _v2_page(request, table)
    elif method != "POST":
        return 405, {"detail": f'Method "{method}" not allowed.'}
    if body is BAD_JSON:
        return 400, {"detail": "JSON parse error."}
    if not isinstance(body, dict):
        got = type(body).__name__ if body is not None else "nothing"
        return 400, {"non_field_errors": [f"Invalid data. Expected a dictionary, but got {got}."]}
    if method != "PATCH" and body.get("name") in (None, ""):
        return 400, {"name": ["This field is required."]}
    if method == "POST":
        ident = max(table, default=0) + 1
        table[ident] = {**body, "id": ident}
        return 201, table[ident]
    table[ident] = {**(table[ident] if method == "PATCH" else {}), **body, "id": ident}
    return 200, table[ident]


def _v2_page(request: web.Request, table: dict[int, Obj]) -> Reply:
    """One page of a v2 list: DRF's page-number pagination, filtered by the query."""
    q = request.query
    size_text, page_text = q.get("page_size", "50"), q.get("page", "1")
    if not size_text.lstrip("-").isdigit():
        return 400, {"page_size": ["A valid integer is required."]}
    if not page_text.isdigit():
        return 404, {"detail": "Invalid page."}
    page, size = int(page_text), int(size_text)
    if size < 1:
        return 400, {"page_size": ["Ensure this value is greater than or equal to 1."]}
    filters = {k: v for k, v in q.items() if k not in ("page", "page_size")}
    found = [o for o in table.values() if all(_same(o.get(k), v) for k, v in filters.items())]
    if page < 1 or (page > 1 and (page - 1) * size >= len(found)):
        return 404, {"detail": "Invalid page."}
    more = page * size < len(found)
    return 200, {
        "count": len(found),
        "next": str(request.url.update_query(page=page + 1)) if more else None,
        "previous": str(request.url.update_query(page=page - 1)) if page > 1 else None,
        "results": found[(page - 1) * size : page * size],
    }
