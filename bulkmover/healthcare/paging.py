"""Following ``nextPageToken``: the one loop every list call of the Google APIs needs."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Protocol, TypeVar


class Page(Protocol):
    @property
    def next_page_token(self) -> str | None: ...


P = TypeVar("P", bound=Page)


async def iter_pages(fetch: Callable[[str | None], Awaitable[P]]) -> AsyncIterator[P]:
    """Every page, one call each: ``fetch(None)`` first, then each page's token until none."""
    token: str | None = None
    while True:
        page = await fetch(token)
        yield page
        token = page.next_page_token
        if not token:
            return
