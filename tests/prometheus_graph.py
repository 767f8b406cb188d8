"""Prometheus's own graph page (the classic UI Debian's ``prometheus`` serves under
``/classic/graph``) with the dashboard's queries, in real headless Chromium.

``graph_url`` builds the page's documented query parameters (``g0.expr``,
``g0.tab=0`` for the graph tab, ``g0.range_input``); ``screenshot`` opens it, waits
until every graph has drawn its series (Rickshaw's SVG paths) and no query reported an
error, and saves a PNG.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlencode

from tests.prometheus_rig import PanelQuery, dashboard_queries
from tests.test_portal_browser import CHROMIUM, CHROMIUM_ARGS  # Debian's, one set of flags

DRAW_DEADLINE = 30_000  # ms for every graph to draw

# The graphs of the README's picture: one query of each of these dashboard panels.
KEY_PANELS = (
    "Doors opened (per minute)",
    "Decisions by source",
    "Decision latency p50 / p99",
    "Check-ins queued",
    "Reader frames by outcome (per minute)",
)


def key_queries() -> list[PanelQuery]:
    """The first query of each ``KEY_PANELS`` panel (p99 for the latency: the one a
    manager watches)."""
    queries = dashboard_queries()
    out = []
    for title in KEY_PANELS:
        mine = [q for q in queries if q.panel == title]
        out.append(next((q for q in mine if "0.99" in q.expr), mine[0]))
    return out


def graph_url(base: str, queries: Sequence[PanelQuery], range_input: str = "5m") -> str:
    params: dict[str, str] = {}
    for i, q in enumerate(queries):
        params[f"g{i}.expr"] = q.expr
        params[f"g{i}.tab"] = "0"
        params[f"g{i}.range_input"] = range_input
    return f"{base}/classic/graph?{urlencode(params)}"


async def screenshot(
    url: str, out: Path, queries: Sequence[PanelQuery], *, width: int = 1100
) -> list[str]:
    """Open ``url`` in Chromium, wait for every graph, save a full-page PNG at ``out``.
    Returns the page's problems (console errors, failed requests, query errors); the
    caller decides whether they fail it."""
    from playwright.async_api import async_playwright

    problems: list[str] = []
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(
                viewport={"width": width, "height": 900}, device_scale_factor=1
            )
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("requestfailed", lambda r: problems.append(f"failed: {r.url}"))
            await page.goto(url)
            # One graph per query, each with at least one drawn series line.
            await page.wait_for_function(
                """n => {
                    const w = document.querySelectorAll('.graph_wrapper');
                    if (w.length < n) return false;
                    return Array.from(w).every(g => g.querySelector('.graph_area svg path')
                        || (g.querySelector('.error') || {}).textContent);
                }""",
                arg=len(queries),
                timeout=DRAW_DEADLINE,
            )
            for i, error in enumerate(
                await page.locator(".graph_wrapper .error").all_inner_texts()
            ):
                if error.strip():
                    problems.append(f"graph {i} ({queries[i].panel}): {error.strip()}")
            # Each graph's heading: the panel it comes from (Prometheus shows only the expr).
            await page.evaluate(
                """titles => {
                    document.querySelectorAll('.graph_wrapper').forEach((g, i) => {
                        if (!titles[i]) return;
                        const h = document.createElement('h5');
                        h.textContent = titles[i];
                        h.style.margin = '12px 0 4px';
                        g.prepend(h);
                    });
                }""",
                [q.panel for q in queries],
            )
            await page.wait_for_timeout(500)  # the last transitions of the graphs
            # The whole page in one viewport: Prometheus's navigation bar is fixed and
            # would otherwise be drawn over a graph halfway down.
            await page.evaluate("document.activeElement && document.activeElement.blur()")
            height = await page.evaluate("document.documentElement.scrollHeight")
            await page.set_viewport_size({"width": width, "height": int(height)})
            await page.evaluate("window.scrollTo(0, 0)")
            out.parent.mkdir(parents=True, exist_ok=True)
            await page.screenshot(path=str(out))
        finally:
            await browser.close()
    return problems
