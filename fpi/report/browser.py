"""Headless Chromium for the HTML report: a screenshot, and a load check (errors, images)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from html import unescape
from pathlib import Path

from fpi.errors import FpiError

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--virtual-time-budget=10000",
)
TIMEOUT_S = 120
#: Injected before anything else on the page: records script errors as they happen and, once
#: loaded, how many <img> decoded (naturalWidth > 0), into attributes of <html>.
PROBE = """<script>
(function () {
  var root = document.documentElement, errors = [];
  window.addEventListener("error", function (e) {
    errors.push(String(e.message || (e.target && e.target.src) || e));
    root.setAttribute("data-fpi-errors", JSON.stringify(errors));
  }, true);
  window.addEventListener("load", function () {
    var imgs = Array.prototype.slice.call(document.images);
    root.setAttribute("data-fpi-images", String(imgs.length));
    root.setAttribute("data-fpi-decoded",
      String(imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length));
    root.setAttribute("data-fpi-errors", JSON.stringify(errors));
    root.setAttribute("data-fpi-loaded", "1");
  });
})();
</script>"""


def chromium_path() -> Path | None:
    """The Chromium binary (`chromium` on PATH or /usr/bin/chromium), or None."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return Path(found)
    default = Path("/usr/bin/chromium")
    return default if default.exists() else None


def _run_chromium(*arguments: str) -> subprocess.CompletedProcess:
    binary = chromium_path()
    if binary is None:
        raise FpiError("headless Chromium not found (install the `chromium` package)")
    with tempfile.TemporaryDirectory(prefix="fpi-chromium-") as profile:
        command = [str(binary), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *arguments]
        try:
            return subprocess.run(
                command, capture_output=True, text=True, timeout=TIMEOUT_S, check=True
            )
        except subprocess.TimeoutExpired:
            raise FpiError(f"Chromium did not finish within {TIMEOUT_S} s") from None
        except subprocess.CalledProcessError as exc:
            raise FpiError(f"Chromium failed ({exc.returncode}): {exc.stderr[-500:]}") from None


def screenshot(
    html_path: Path | str, png_path: Path | str, *, width: int = 1280, height: int = 2400
) -> Path:
    """Render `html_path` in headless Chromium and save the top `width` x `height` pixels."""
    png_path = Path(png_path).resolve()
    png_path.parent.mkdir(parents=True, exist_ok=True)
    _run_chromium(
        f"--screenshot={png_path}",
        f"--window-size={width},{height}",
        Path(html_path).resolve().as_uri(),
    )
    if not png_path.is_file():
        raise FpiError(f"Chromium wrote no screenshot to {png_path}")
    return png_path


def check_page(html_path: Path | str) -> dict:
    """Load a copy of the page with `PROBE` injected; return `loaded`, `images`, `decoded`
    (images with naturalWidth > 0), the script `errors` seen, and every `data-fpi-*`
    attribute of <html> after load (`attributes`)."""
    html = Path(html_path).read_text(encoding="utf-8")
    probed = re.sub(r"<head>", "<head>" + PROBE, html, count=1, flags=re.IGNORECASE)
    with tempfile.TemporaryDirectory(prefix="fpi-page-") as folder:
        copy = Path(folder) / "page.html"
        copy.write_text(probed, encoding="utf-8")
        dom = _run_chromium("--dump-dom", copy.as_uri()).stdout
    opening = re.search(r"<html[^>]*>", dom)
    found = re.findall(r'data-fpi-([a-z]+)="([^"]*)"', opening.group(0) if opening else "")
    attributes = {name: unescape(value) for name, value in found}
    return {
        "attributes": attributes,
        "loaded": attributes.get("loaded") == "1",
        "images": int(attributes.get("images", -1)),
        "decoded": int(attributes.get("decoded", -1)),
        "errors": json.loads(attributes.get("errors", "[]")),
    }
