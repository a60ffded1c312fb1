"""Memory gateway: FastAPI service holding the memory logic in front of Triton."""

__all__ = ["create_app"]


def __getattr__(name: str):  # lazy, so `python -m gateway.triton` does not import FastAPI
    if name == "create_app":
        from gateway.app import create_app

        return create_app
    raise AttributeError(name)
