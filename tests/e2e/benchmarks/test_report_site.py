"""`lab verify --recorded` then `lab report`, and the site they build, in headless Chromium.

The commands run as a user runs them (no server needed: they read the committed
results). The browser is Debian's Chromium driven by Playwright's driver, launched
with no network services of its own. Every page must load with no console error and
no failed request, every image must have decoded, and the layout is checked by
element boxes at a desktop and a phone width: nothing wider than the viewport,
tables within it (a wide table scrolls inside its own box), figures visible. A
pixel-exact baseline would break on every font or Chromium update without a layout
change, so the screenshots are saved for a person to look at, not compared.
"""

import functools
import json
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from benchmarks.claims import load_claims
from benchmarks.site.feed import SCHEMA, VERSION
from benchmarks.site.labs import LABS
from labs.paths import project_root

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PAGES = ["index.html", *(f"{lab.slug}.html" for lab in LABS)]
WIDTHS = (1280, 390)


@dataclass(frozen=True)
class Built:
    """What the two commands printed, and where the site is."""

    verify: subprocess.CompletedProcess[str]
    report: subprocess.CompletedProcess[str]
    verify_file: Path
    site: Path


def lab(*args: str) -> subprocess.CompletedProcess[str]:
    """Run `lab <args>` as its own process."""
    return subprocess.run(
        [sys.executable, "-m", "labs", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """Judge the committed results, then build the report from that verify file."""
    root = tmp_path_factory.mktemp("report")
    verify = lab("verify", "--recorded", "--out", str(root / "verify"))
    (verify_file, *_) = (*sorted((root / "verify").glob("*.json")), None)
    assert verify_file is not None, verify.stderr
    report = lab("report", "--out", str(root / "site"), "--verify", str(verify_file))
    return Built(verify, report, verify_file, root / "site")


def test_verify_reports_misses_and_exits_zero_and_report_uses_it(built: Built) -> None:
    """Misses are printed NOT MET (a report, not a failure); the feed names the verify file."""
    assert built.verify.returncode == 0, built.verify.stderr
    assert "**NOT MET**" in built.verify.stdout
    assert "| rl-tls-l7 | TLS termination and L7 load balancing | - | - | not measurable yet" in (
        built.verify.stdout
    )
    assert json.loads(built.verify_file.read_text())["mode"] == "recorded"
    assert built.report.returncode == 0, built.report.stderr
    feed = json.loads((built.site / "latest.json").read_text())
    assert feed["verify"]["file"].endswith(built.verify_file.name)


def test_every_page_is_written_and_every_image_it_names_exists(built: Built) -> None:
    """Index and one page per lab; each <img> points at a PNG in the site."""
    assert {path.name for path in built.site.glob("*.html")} >= set(PAGES)
    for name in PAGES:
        page = (built.site / name).read_text()
        assert page.startswith("<!doctype html>")
        for source in re.findall(r'<img src="([^"]+)"', page):
            assert (built.site / source).read_bytes().startswith(b"\x89PNG"), (name, source)


def test_each_lab_page_shows_its_results_or_says_there_are_none(built: Built) -> None:
    """Built labs show their figures and matrices; labs not built yet name their command."""
    rate_limiter = (built.site / "rate-limiter.html").read_text()
    assert "lab bench rate-limiter-500" in rate_limiter
    assert "Latency percentiles per run" in rate_limiter
    assert "Admitted beyond the shared limit" in rate_limiter  # the multi-region matrix
    assert "predates the recorded histogram" in rate_limiter  # an older file: said, not drawn
    scheduler = (built.site / "scheduler.html").read_text()
    assert "Redis memory flat while the DLQ grows" in scheduler  # the chaos checks
    cache = (built.site / "cache.html").read_text()
    assert "lab experiment cache-stampede</code> is not registered yet" in cache


def test_the_feed_is_versioned_and_never_calls_an_unmet_claim_met(built: Built) -> None:
    """latest.json: schema and version, one entry per claim, met only if every measure is."""
    feed: dict[str, Any] = json.loads((built.site / "latest.json").read_text())
    assert (feed["schema"], feed["version"]) == (SCHEMA, VERSION)
    assert feed["verify"]["mode"] == "recorded"
    assert [entry["id"] for entry in feed["claims"]] == [claim.id for claim in load_claims()]
    for entry in feed["claims"]:
        verdicts = {measure["verdict"] for measure in entry["measures"]}
        assert (entry["status"] == "met") == (verdicts == {"met"}), entry["id"]
        assert entry["page"].split("#")[1] == entry["id"]
        for measure in entry["measures"]:
            if measure["value"] is not None:  # a figure names the committed file it came from
                assert (project_root() / measure["results_file"]).is_file(), measure
    assert feed["counts"]["not met"] >= 1  # the lab reports what it misses


@pytest.fixture(scope="module")
def served(built: Built) -> Iterator[str]:
    """The site on a loopback port for the length of the module."""

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *_: Any) -> None:
            """Keep the test output clean."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=built.site))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


LAYOUT = """() => {
  const width = document.documentElement.clientWidth;
  const outside = (el) => {
    const box = el.getBoundingClientRect();
    return box.left < -1 || box.right > width + 1;
  };
  return {
    width,
    scrollWidth: document.documentElement.scrollWidth,
    tablesOutside: [...document.querySelectorAll('.table-wrap')].filter(outside).length,
    tablesUnwrapped: [...document.querySelectorAll('table')]
      .filter(t => !t.closest('.table-wrap')).length,
    images: [...document.images].map(i => ({
      src: i.getAttribute('src'),
      complete: i.complete,
      natural: i.naturalWidth * i.naturalHeight,
      shown: i.getBoundingClientRect().width,
      outside: outside(i),
    })),
    h1: document.querySelector('h1')?.textContent,
  };
}"""


def watch(page: Any, problems: list[str]) -> None:
    """Record every console error or warning, page error, failed request and 4xx/5xx."""

    def console(message: Any) -> None:
        if message.type in {"error", "warning"}:
            problems.append(f"console {message.type}: {message.text}")

    def response(answer: Any) -> None:
        if answer.status >= 400:
            problems.append(f"{answer.status}: {answer.url}")

    page.on("console", console)
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("requestfailed", lambda request: problems.append(f"failed: {request.url}"))
    page.on("response", response)


def check_layout(layout: dict[str, Any], where: str) -> None:
    """Nothing wider than the viewport, every table boxed, every image decoded and shown."""
    assert layout["h1"], where
    assert layout["scrollWidth"] <= layout["width"], where
    assert layout["tablesOutside"] == 0, where
    assert layout["tablesUnwrapped"] == 0, where
    for image in layout["images"]:
        assert image["complete"], (where, image)
        assert image["natural"] > 0, (where, image)
        assert image["shown"] > 0, (where, image)
        assert not image["outside"], (where, image)


@pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="needs Debian's chromium at /usr/bin/chromium (apt-get install chromium; CI has it)",
)
def test_every_page_loads_clean_and_keeps_its_layout(served: str, tmp_path: Path) -> None:
    """No console error or failed request; images decoded; nothing overflows at 1280 or 390."""
    from playwright.sync_api import sync_playwright  # noqa: PLC0415 - only with a browser

    problems: list[str] = []
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
        )
        try:
            page = context.new_page()
            watch(page, problems)
            for width in WIDTHS:
                page.set_viewport_size({"width": width, "height": 900})
                for name in PAGES:
                    response = page.goto(f"{served}/{name}", wait_until="load")
                    assert response is not None
                    assert response.ok, name
                    check_layout(page.evaluate(LAYOUT), f"{name} at {width}px")
                    page.screenshot(path=str(tmp_path / f"{name}-{width}.png"))
        finally:
            context.close()
    assert problems == []
    assert len(list(tmp_path.glob("*.png"))) == len(PAGES) * len(WIDTHS)
