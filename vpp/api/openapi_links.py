"""OpenAPI links between operations: what a created resource's id feeds (the offer an award
takes, the award a dispatch runs under, the reads, changes and cancels by id). Clients and
stateful API testers (schemathesis' stateful phase) follow them to chain calls."""
from __future__ import annotations

from typing import Any

P = "/api/v1"

#: (creating operation) → [(link name, target operation, parameters, request body)]
LINKS: dict[tuple[str, str], list[tuple[str, tuple[str, str], dict[str, str], dict[str, str] | None]]] = {
    ("post", f"{P}/offers"): [
        ("ReadOffer", ("get", f"{P}/offers/{{offer_id}}"), {"offer_id": "$response.body#/id"}, None),
        # the whole offer: its slots have the shape an award's slots take
        ("AwardOffer", ("post", f"{P}/awards"), {},
         {"offer_id": "$response.body#/id", "slots": "$response.body#/slots"}),
    ],
    ("post", f"{P}/awards"): [
        ("ReadAward", ("get", f"{P}/awards/{{award_id}}"), {"award_id": "$response.body#/id"}, None),
        ("DispatchAward", ("post", f"{P}/dispatches"), {}, {"award_id": "$response.body#/id"}),
    ],
    ("post", f"{P}/dispatches"): [
        ("ReadDispatch", ("get", f"{P}/dispatches/{{dispatch_id}}"), {"dispatch_id": "$response.body#/id"}, None),
        ("ModifyDispatch", ("patch", f"{P}/dispatches/{{dispatch_id}}"), {"dispatch_id": "$response.body#/id"}, None),
        ("CancelDispatch", ("delete", f"{P}/dispatches/{{dispatch_id}}"), {"dispatch_id": "$response.body#/id"}, None),
        ("DispatchPerformance", ("get", f"{P}/dispatches/{{dispatch_id}}/performance"),
         {"dispatch_id": "$response.body#/id"}, None),
    ],
}


def add_links(doc: dict[str, Any]) -> None:
    """Add :data:`LINKS` to the 2xx responses of ``doc`` (an OpenAPI document, in place);
    operations missing from ``doc`` are skipped."""
    paths = doc.get("paths", {})
    for (method, path), links in LINKS.items():
        op = paths.get(path, {}).get(method)
        if op is None:
            continue
        out = {}
        for name, (t_method, t_path), params, body in links:
            target = paths.get(t_path, {}).get(t_method)
            if target is None or "operationId" not in target:
                continue
            link: dict[str, Any] = {"operationId": target["operationId"]}
            if params:
                link["parameters"] = params
            if body:
                link["requestBody"] = body
            out[name] = link
        for code, resp in op.get("responses", {}).items():
            if code.startswith("2") and out:
                resp["links"] = out
