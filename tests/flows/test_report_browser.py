"""The report as a browser shows it: Debian's headless Chromium loads the page (no network), and the
test reads what it rendered — the DOM after parsing, and the pixels of a screenshot."""

from __future__ import annotations

import shutil
import struct
import subprocess
import zlib
from pathlib import Path

from sqlalchemy.engine import Engine

from tests.flows.test_report import _render, store  # noqa: F401  (the fixture)

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync")
# flows.report STATUS_COLOURS: on_track, achieved, off_track
ON_TRACK_GREEN, ACHIEVED_GREEN, OFF_TRACK_RED = (0x2D, 0xA4, 0x4E), (0x1A, 0x7F, 0x37), (0xCF, 0x22, 0x2E)


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("chromium")
    assert binary, "Debian's chromium is not installed: `make test` installs it (scripts/ensure-chromium.sh)"
    return subprocess.run([binary, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *args],
                          capture_output=True, text=True, timeout=120)


def _pixels(png: bytes) -> list[tuple[int, int, int]]:
    """Every pixel's RGB of an 8-bit, non-interlaced RGB or RGBA PNG (what Chromium's screenshots are)."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, offset = {}, 8
    data = b""
    while offset < len(png):
        length, kind = struct.unpack(">I4s", png[offset:offset + 8])
        body = png[offset + 8:offset + 8 + length]
        if kind == b"IDAT":
            data += body
        else:
            chunks.setdefault(kind, body)
        offset += 12 + length
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", chunks[b"IHDR"])
    assert depth == 8 and colour in (2, 6) and interlace == 0
    size = 3 if colour == 2 else 4
    raw, stride = zlib.decompress(data), width * size
    rows, previous = [], bytearray(stride)
    for y in range(height):
        line = raw[y * (stride + 1):(y + 1) * (stride + 1)]
        kind, row = line[0], bytearray(line[1:])
        for i in range(stride):
            left = row[i - size] if i >= size else 0
            up, corner = previous[i], previous[i - size] if i >= size else 0
            if kind == 1:
                row[i] = (row[i] + left) & 0xFF
            elif kind == 2:
                row[i] = (row[i] + up) & 0xFF
            elif kind == 3:
                row[i] = (row[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                guess = left + up - corner
                near = min((abs(guess - left), 0, left), (abs(guess - up), 1, up), (abs(guess - corner), 2, corner))
                row[i] = (row[i] + near[2]) & 0xFF
        rows.append(bytes(row))
        previous = row
    return [tuple(row[x:x + 3]) for row in rows for x in range(0, stride, size)]  # type: ignore[misc]


def test_chromium_renders_the_report_with_its_charts_and_bars(store: Engine, tmp_path: Path) -> None:  # noqa: F811
    page, results = _render(store)
    path = tmp_path / "report.html"
    path.write_text(page, encoding="utf-8")
    dom = _chromium(tmp_path, "--dump-dom", path.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    for result in results:  # the browser's DOM holds every KR and group
        assert (result.group or result.title).replace("<", "&lt;") in dom.stdout
    assert dom.stdout.count("<svg") == sum(1 for r in results if r.group is None)
    assert dom.stdout.count('class="value-line"') == dom.stdout.count("<svg")

    shot = _chromium(tmp_path, "--window-size=1000,2600", f"--screenshot={tmp_path / 'shot.png'}", path.as_uri())
    assert shot.returncode == 0, shot.stderr[-2000:]
    pixels = _pixels((tmp_path / "shot.png").read_bytes())
    assert len(pixels) == 1000 * 2600
    assert {r.status for r in results} == {"on_track", "achieved"}  # the fixture's KRs
    # bars, badges and the charts' value lines are painted in their status colours
    assert pixels.count(ON_TRACK_GREEN) > 2_000 and pixels.count(ACHIEVED_GREEN) > 200
    assert pixels.count(OFF_TRACK_RED) == 0  # no KR is off track, so nothing is painted red
    assert len(set(pixels)) > 50  # text, lines and bars, not a blank page
