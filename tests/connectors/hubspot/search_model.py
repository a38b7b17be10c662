"""The number of searches the keyset pager makes, computed from timestamps alone.

It depends only on how many records share each timestamp, never on their tie order: a full
page stores its head (records before its last timestamp t') and the next search starts at t';
a page that is all t' is drained in pages of the t' records by id.
"""

from __future__ import annotations

from collections.abc import Iterable


def search_calls(stamps: Iterable[int], page: int = 200) -> int:
    """Searches to read records with these timestamps (all after the cursor) until one comes back short.

    With no two records on one timestamp this is max(1, ceil(N / (page - 1))).
    """
    ordered = sorted(stamps)
    position, calls = 0, 0
    while True:
        calls += 1
        window = ordered[position:position + page]
        if len(window) < page:
            return calls
        top = window[-1]
        head = sum(1 for stamp in window if stamp < top)
        if head:
            position += head
            continue
        ties = sum(1 for stamp in ordered[position:] if stamp == top)
        calls += ties // page + 1  # tie pages by id, the last one short
        position += ties
