"""A domain error names a request field; the API layer says where in the request it sits
(gateway/api/errors.py)."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient

from gateway.api.errors import install_error_handlers
from gateway.errors import InvalidInput


def app() -> FastAPI:
    api = FastAPI()
    install_error_handlers(api)

    @api.get("/page")
    async def page() -> None:
        raise InvalidInput.at(("cursor",), "invalid cursor")

    @api.post("/add")
    async def add() -> None:
        raise InvalidInput.at(("items", 2, "embedding"), "embedding values must be finite")

    @api.post("/plain")
    async def plain() -> None:
        raise InvalidInput("keyword search needs a text query")

    return api


def test_a_field_of_a_get_sits_in_the_query_string() -> None:
    response = TestClient(app()).get("/page")
    assert response.status_code == 422
    assert response.content == (b'{"detail":[{"type":"value_error","loc":["query","cursor"],'
                                b'"msg":"invalid cursor"}]}')


def test_a_field_of_a_post_sits_in_the_body() -> None:
    response = TestClient(app()).post("/add", json={})
    assert response.status_code == 422
    assert response.json() == {"detail": [{"type": "value_error",
                                           "loc": ["body", "items", 2, "embedding"],
                                           "msg": "embedding values must be finite"}]}


def test_an_error_without_a_field_is_a_message() -> None:
    response = TestClient(app()).post("/plain", json={})
    assert response.json() == {"detail": "keyword search needs a text query"}
