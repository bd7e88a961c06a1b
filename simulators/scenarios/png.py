"""PNG plots of a scenario report, rendered by Chromium from ``report.html``.

kaleido and matplotlib are not dependencies; the Chromium the dashboard tests need
(``/usr/bin/chromium``, driven by Playwright, never downloaded) renders the report's own
plotly figures: the page is loaded from disk (plotly.js is inlined: no network) and each
``<div id="plot-<name>">`` is screenshotted to ``<out_dir>/<name>.png``.

:class:`PngUnavailable` says why when Playwright or Chromium is missing; callers skip the
PNGs and keep the rest of the report.
"""
from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

#: Chromium binary (Debian package); ``VPP_CHROMIUM`` overrides it.
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
#: Page width [CSS px] the plots are laid out in (they fill it); height comes from the figure.
WIDTH_PX = 1200


class PngUnavailable(RuntimeError):
    """PNG rendering is not possible here; ``str()`` says what is missing."""


def chromium_path() -> str:
    return os.environ.get("VPP_CHROMIUM", CHROMIUM)


def write_pngs(html_path: str | Path, names: Iterable[str], out_dir: str | Path | None = None, *,
               timeout_s: float = 60.0) -> dict[str, Path]:
    """Screenshot ``#plot-<name>`` of ``html_path`` for each of ``names`` to
    ``<out_dir>/<name>.png`` (default: next to the HTML); returns the paths by name.

    Raises :class:`PngUnavailable` without Playwright or Chromium, or when a plot does not
    render within ``timeout_s`` [s].
    """
    html_path = Path(html_path).resolve()
    out = Path(out_dir) if out_dir is not None else html_path.parent
    exe = chromium_path()
    try:
        from playwright.sync_api import Error as PlaywrightError
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise PngUnavailable("Playwright is not installed (pip install playwright; the browser is "
                             f"the system Chromium at {exe}, never downloaded)") from None
    if not os.access(exe, os.X_OK):
        raise PngUnavailable(f"Chromium not found at {exe} (install the Debian chromium package: make sysdeps, "
                             "or set VPP_CHROMIUM)")
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=exe, args=ARGS)
            try:
                page = browser.new_page(viewport={"width": WIDTH_PX, "height": 900})
                # the report is self-contained: refuse any network request it might make
                page.route("http*://**", lambda route: route.abort())
                page.goto(html_path.as_uri(), wait_until="load", timeout=timeout_s * 1000)
                for name in names:
                    el = page.locator(f"#plot-{name}")
                    el.locator(".main-svg").first.wait_for(state="visible", timeout=timeout_s * 1000)
                    paths[name] = out / f"{name}.png"
                    el.screenshot(path=str(paths[name]), animations="disabled", timeout=timeout_s * 1000)
            finally:
                browser.close()
    except PlaywrightError as e:
        raise PngUnavailable(f"Chromium could not render {html_path.name}: {str(e).splitlines()[0]}") from None
    return paths
