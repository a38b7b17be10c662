"""The number of searches the keyset pager makes, computed from timestamps alone.

It depends only on how many records share each timestamp, never on their tie order: a full
page stores its head (records before its last timestamp t') and the next search starts at t';
a page that is all t' is drained in pages of the t' records by id.
"""

from __future__ import annotations

from collections.abc import Iterable


def search_pages(stamps: Iterable[int], page: int = 200) -> tuple[int, int]:
    """(searches, stored pages) to read records with these timestamps (all after the cursor).

    Every stored page costs one association read besides its search.
    """
    ordered = sorted(stamps)
    position, calls, stores = 0, 0, 0
    while True:
        calls += 1
        window = ordered[position:position + page]
        if len(window) < page:
            return calls, stores + (1 if window else 0)
        top = window[-1]
        head = sum(1 for stamp in window if stamp < top)
        if head:
            position += head
            stores += 1
            continue
        ties = sum(1 for stamp in ordered[position:] if stamp == top)
        calls += ties // page + 1  # tie pages by id, the last one short
        stores += -(-ties // page)
        position += ties


def search_calls(stamps: Iterable[int], page: int = 200) -> int:
    """Searches to read records with these timestamps (all after the cursor) until one comes back short.

    With no two records on one timestamp this is max(1, ceil(N / (page - 1))).
    """
    return search_pages(stamps, page)[0]


def sync_calls(stamps: Iterable[int], archived: int = 0, page: int = 200) -> int:
    """Calls of a deals/calls extract without lookups: searches, one association read per stored
    page, then the archived list (ceil(archived / 100) pages, at least 1)."""
    searches, stores = search_pages(stamps, page)
    return searches + stores + max(1, -(-archived // 100))
