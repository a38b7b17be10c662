"""The number of calls the HubSpot connector makes for a search stream, computed from timestamps alone.

It depends only on how many records share each timestamp, never on their tie order: a full
page stores its head (records before its last timestamp t') and the next search starts at t';
a page that is all t' is drained in pages of the t' records by id. The fresh records of up to
five stored pages share one association read (at most 1000 ids: the buffer is committed when
one more page might not fit).
"""

from __future__ import annotations

from collections.abc import Iterable


def stored_pages(stamps: Iterable[int], page: int = 200) -> tuple[int, list[int]]:
    """(searches, sizes of the stored pages) to read records with these timestamps (all after the cursor)."""
    ordered = sorted(stamps)
    position, calls, sizes = 0, 0, []
    while True:
        calls += 1
        window = ordered[position:position + page]
        if len(window) < page:
            return calls, sizes + ([len(window)] if window else [])
        top = window[-1]
        head = sum(1 for stamp in window if stamp < top)
        if head:
            position += head
            sizes.append(head)
            continue
        ties = sum(1 for stamp in ordered[position:] if stamp == top)
        calls += ties // page + 1  # tie pages by id, the last one short
        sizes += [page] * (ties // page) + ([ties % page] if ties % page else [])
        position += ties


def search_pages(stamps: Iterable[int], page: int = 200) -> tuple[int, int]:
    """(searches, stored pages) to read records with these timestamps (all after the cursor)."""
    searches, sizes = stored_pages(stamps, page)
    return searches, len(sizes)


def association_reads(sizes: Iterable[int], page: int = 200, batch: int = 1000, buffer_pages: int = 5) -> int:
    """v4 batch reads for stored pages of these (fresh) sizes: one per committed buffer holding records."""
    reads, buffered, pages = 0, 0, 0
    for size in sizes:
        buffered, pages = buffered + size, pages + 1
        if pages >= buffer_pages or buffered + page > batch:
            reads += 1 if buffered else 0
            buffered, pages = 0, 0
    return reads + (1 if buffered else 0)


def search_calls(stamps: Iterable[int], page: int = 200) -> int:
    """Searches to read records with these timestamps (all after the cursor) until one comes back short.

    With no two records on one timestamp this is max(1, ceil(N / (page - 1))).
    """
    return search_pages(stamps, page)[0]


def sync_calls(stamps: Iterable[int], archived: int = 0, page: int = 200) -> int:
    """Calls of a search-stream extract without lookups: searches, one association read per committed
    buffer of up to five pages, then the archived list (ceil(archived / 100) pages, at least 1)."""
    searches, sizes = stored_pages(stamps, page)
    return searches + association_reads(sizes, page) + max(1, -(-archived // 100))
