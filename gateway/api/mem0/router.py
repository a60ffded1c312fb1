"""The Mem0-compatible API's routes in one router, for the app to include."""

from fastapi import APIRouter

from gateway.api.mem0 import memories, platform, unsupported

router = APIRouter()
router.include_router(platform.router)
router.include_router(memories.query_router)
router.include_router(memories.router)
router.include_router(unsupported.router)
