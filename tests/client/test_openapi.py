"""/openapi.json is complete (every route, every error answer as ``{"detail"}``), and the
client package's request and response types match it field by field."""

from __future__ import annotations

import types
import typing
from collections.abc import Iterator
from typing import Any, get_args, get_origin, get_type_hints

import pytest
from agent_memory import _types
from agent_memory._routes import MAX_BATCH_ITEMS, MAX_PAGE_LIMIT, ROUTES
from fastapi.routing import APIRoute

from gateway.api.errors import COMMON_ERRORS
from gateway.app import create_app
from gateway.settings import Settings

API_PREFIXES = ("/v1/", "/v2/", "/v3/", "/api/")
_JSON = {str: "string", int: "integer", float: "number", bool: "boolean", dict: "object",
         list: "array"}


@pytest.fixture(scope="module")
def app_and_spec(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, dict[str, Any]]:
    app = create_app(Settings(data_dir=tmp_path_factory.mktemp("openapi")))
    return app, app.openapi()


def resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def json_types(spec: dict[str, Any], schema: dict[str, Any]) -> set[str]:
    schema = resolve(spec, schema)
    if "anyOf" in schema:
        return set().union(*(json_types(spec, s) for s in schema["anyOf"]))
    if "type" in schema:
        return {schema["type"]}
    return {"object"} if "properties" in schema else {"any"}


def python_types(annotation: Any) -> set[str]:
    """JSON type names a TypedDict field annotation allows."""
    origin = get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return set().union(*(python_types(a) for a in get_args(annotation)))
    if origin in (typing.NotRequired, typing.Required):
        return python_types(get_args(annotation)[0])
    if annotation is type(None):
        return {"null"}
    if origin is typing.Literal:  # a choice of values: their types
        return {_JSON[type(value)] for value in get_args(annotation)}
    if typing.is_typeddict(annotation):
        return {"object"}
    return {_JSON[origin or annotation]}


def check_fields(spec: dict[str, Any], typed: type, schema: dict[str, Any], *,
                 sent: bool) -> None:
    """Every field the client knows exists on the server with a compatible type; what the
    server requires, the client sends as required (requests) or can rely on (responses)."""
    schema = resolve(spec, schema)
    hints = get_type_hints(typed)
    if "anyOf" in schema:  # a route with several answer shapes: the client's must be one
        variants = [resolve(spec, variant) for variant in schema["anyOf"]]
        schema = next(v for v in variants if set(hints) <= set(v.get("properties", ())))
    properties, required = schema["properties"], set(schema.get("required", ()))
    assert set(hints) <= set(properties), (typed.__name__, set(hints) - set(properties))
    for name, annotation in hints.items():
        server = json_types(spec, properties[name])
        client = python_types(annotation)
        if "any" not in server:
            assert client <= server | {"integer"} and client & server, (typed.__name__, name)
        if not sent and name in typed.__required_keys__:  # type: ignore[attr-defined]
            assert name in required, (typed.__name__, name, "optional on the server")
    if sent:
        assert required <= typed.__required_keys__, (typed.__name__, required)  # type: ignore[attr-defined]


def test_client_routes_and_types_match_the_openapi_schema(app_and_spec) -> None:
    _, spec = app_and_spec
    for name, route in ROUTES.items():
        operation = spec["paths"][route.path][route.method.lower()]
        if route.request is not None:
            body = operation["requestBody"]["content"]["application/json"]["schema"]
            check_fields(spec, route.request, body, sent=True)
        else:
            assert "requestBody" not in operation, name
        parameters = {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}
        assert set(route.query) <= parameters, name
        # 202 answers only an async_mode request, which the client does not send
        success = [code for code in operation["responses"] if code.startswith("2")
                   and code != "202"]
        assert len(success) == 1, name
        if route.response is None:
            assert success == ["204"], name
        else:
            content = operation["responses"][success[0]]["content"]["application/json"]
            check_fields(spec, route.response, content["schema"], sent=False)
    # nested types too: search filters, and the hits inside a search result
    def body(path: str) -> dict[str, Any]:
        content = spec["paths"][path]["post"]["requestBody"]["content"]["application/json"]
        return resolve(spec, content["schema"])["properties"]

    filters = body("/v1/memories/search")["filters"]
    check_fields(spec, _types.SearchFilters, filters["anyOf"][0], sent=True)
    assert body("/v1/memories/batch")["items"]["maxItems"] == MAX_BATCH_ITEMS
    listing = spec["paths"]["/v1/memories"]["get"]["parameters"]
    [limit] = [p for p in listing if p["name"] == "limit"]
    assert limit["schema"]["maximum"] == MAX_PAGE_LIMIT


def api_routes(routes: list[Any], prefix: str = "",
               in_schema: bool = True) -> Iterator[tuple[str, APIRoute, bool]]:
    """(full path, route, in the schema) for every APIRoute, also inside included routers
    (FastAPI >= 0.16x keeps those as lazy ``_IncludedRouter`` entries with the prefix, and
    whether the inclusion is in the schema, in their context)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield prefix + route.path_format, route, in_schema and route.include_in_schema
        elif hasattr(route, "original_router"):
            context = route.include_context
            yield from api_routes(route.original_router.routes, prefix + context.prefix,
                                  in_schema and context.include_in_schema)


def test_every_route_is_in_the_schema_with_its_error_model(app_and_spec) -> None:
    app, spec = app_and_spec
    routes = [(path, r) for path, r, in_schema in api_routes(app.routes) if in_schema]
    assert len(routes) > 20  # the walk found the routers (it fails loudly if FastAPI changes)
    for path, route in routes:
        for method in route.methods:
            operation = spec["paths"][path][method.lower()]
            if not path.startswith(API_PREFIXES):
                continue
            codes = {int(c) for c in operation["responses"] if c[0] in "45"}
            assert set(COMMON_ERRORS) <= codes, (method, path, codes)
            for code in codes:
                content = operation["responses"][str(code)]["content"]["application/json"]
                error = resolve(spec, content["schema"])
                assert error["title"] == "ErrorOut", (method, path, code)
    assert {"HTTPBearer", "APIKeyHeader"} <= set(spec["components"]["securitySchemes"])
