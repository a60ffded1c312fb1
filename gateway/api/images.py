"""Wire to domain for image memories: image items become drafts, stored images become
``AddedOut`` answers with their picture's details; a search's query image is decoded here.
Used by the add, batch, search and read routes of ``/v1/memories``."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from gateway.api.schemas import (
    AddedOut,
    BatchIn,
    ImageOut,
    MemoryIn,
    MemoryOut,
    SearchIn,
    moment_text,
)
from gateway.auth.scope import TenantScope
from gateway.domain.normalise import normalise_text
from gateway.errors import FieldPath, InvalidInput
from gateway.memory.changes import NewMemory
from gateway.memory.image_memories import ImageDraft, ImageMemories
from gateway.memory.images import decode_base64


def _draft(images: ImageMemories, item: MemoryIn, users: TenantScope,
           where: FieldPath) -> ImageDraft:
    """One image item as a draft; its base64 decoded (bounded), its caption normalised."""
    assert item.image is not None
    field = (*where, "image")
    memory = NewMemory(
        user_id=users.internal(item.user_id), text=normalise_text(item.text or ""),
        agent_id=item.agent_id, run_id=item.run_id, metadata=item.metadata,
        priority=item.priority, occurred_at=moment_text(item.occurred_at),
        expires_at=moment_text(item.expires_at))
    return ImageDraft(memory, decode_base64(item.image, images.limits, field), field)


async def add_images(images: ImageMemories, items: Sequence[MemoryIn], users: TenantScope,
                     *, batch: BatchIn | None = None) -> list[AddedOut]:
    """Store image items (all or none) and answer each as an ``ADD``. A batch holds images
    only and cannot ask for ``infer`` or ``async_mode`` (an image is stored at once)."""
    if batch is not None:
        for option in ("infer", "async_mode"):
            if getattr(batch, option):
                raise InvalidInput.at((option,), f"a batch of images cannot use '{option}'")
    for i, item in enumerate(items):
        if item.image is None:
            where: FieldPath = ("items", i) if batch is not None else ()
            raise InvalidInput.at((*where, "image"), "a batch holds images only or texts "
                                  "only; send the texts in a batch of their own")
    # Decoding megabytes of base64 is CPU work: off the event loop, as the cleaning is.
    drafts = await asyncio.to_thread(lambda: [
        _draft(images, item, users, ("items", i) if batch is not None else ())
        for i, item in enumerate(items)])
    stored = await images.add(drafts)
    answers = []
    for n, (memory, picture) in enumerate(stored):
        out = MemoryOut.of(users.outward(memory), ImageOut.of(memory.id, picture))
        answers.append(AddedOut(**out.model_dump(exclude={"image"}), image=out.image,
                                event="ADD", item=n))
    return answers


def search_image(body: SearchIn, images: ImageMemories) -> bytes | None:
    """A search's query image, decoded (bounded like an added one); None for other queries."""
    if body.image is None:
        return None
    return decode_base64(body.image, images.limits, ("image",))


async def image_out(images: ImageMemories, memory_id: str) -> ImageOut | None:
    stored = await images.image(memory_id)
    return None if stored is None else ImageOut.of(memory_id, stored)
