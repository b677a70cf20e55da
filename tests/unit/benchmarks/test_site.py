"""The report builder on the committed results files: every page, every figure, the feed."""

import json
import re
from pathlib import Path
from typing import Any

import pytest

from benchmarks.claims import load_claims
from benchmarks.site import build_site
from benchmarks.site.feed import SCHEMA, VERSION
from benchmarks.site.labs import LABS
from benchmarks.site.pages import markdown
from benchmarks.verify import Mode, run_verify
from labs.paths import project_root

PAGES = {"index.html", *(f"{lab.slug}.html" for lab in LABS)}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The site built from the committed results and a verify of them (runs nothing)."""
    root = tmp_path_factory.mktemp("report")
    verify_file = run_verify(
        load_claims(), Mode.RECORDED, progress=lambda _: None, verify_dir=root / "verify"
    )
    feed = root / "feed.json"
    build_site(root / "site", verify_file=verify_file, feed_path=feed)
    return root / "site", feed


def test_every_page_is_written_and_every_image_it_names_exists(site: tuple[Path, Path]) -> None:
    """Index and one page per lab; each <img> points at a non-empty PNG in the site."""
    out, _ = site
    assert {path.name for path in out.glob("*.html")} >= PAGES
    for name in PAGES:
        html = (out / name).read_text()
        assert html.startswith("<!doctype html>")
        for source in re.findall(r'<img src="([^"]+)"', html):
            image = out / source
            assert image.read_bytes().startswith(b"\x89PNG"), (name, source)


def test_each_lab_page_shows_its_results_or_says_there_are_none(site: tuple[Path, Path]) -> None:
    """Built labs show their figures; labs not built yet name the command that will."""
    out, _ = site
    rate_limiter = (out / "rate-limiter.html").read_text()
    assert "lab bench rate-limiter-500" in rate_limiter
    assert "Latency percentiles per run" in rate_limiter
    assert "Admitted beyond the shared limit" in rate_limiter  # the multi-region matrix
    assert "predates the recorded histogram" in rate_limiter  # an older file: said, not drawn
    scheduler = (out / "scheduler.html").read_text()
    assert "Redis memory flat while the DLQ grows" in scheduler  # the chaos checks
    cache = (out / "cache.html").read_text()
    assert "`lab experiment cache-stampede`" not in cache
    assert "lab experiment cache-stampede</code> is not registered yet" in cache


def test_the_feed_is_versioned_and_never_calls_an_unmet_claim_met(site: tuple[Path, Path]) -> None:
    """latest.json: schema and version, one entry per claim, met only if every measure is."""
    out, feed_path = site
    feed: dict[str, Any] = json.loads(feed_path.read_text())
    assert feed == json.loads((out / "latest.json").read_text()) | {
        "generated_at": feed["generated_at"]
    }
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


def test_without_a_verify_every_claim_is_not_verified(tmp_path: Path) -> None:
    """No verify file: nothing is claimed as met, and the index says why."""
    build_site(tmp_path / "site", verify_file=None, results_root=tmp_path / "no-benchmarks")
    feed = json.loads((tmp_path / "site" / "latest.json").read_text())
    assert feed["verify"] is None
    assert {entry["status"] for entry in feed["claims"]} == {"not verified"}
    assert "Not verified" in (tmp_path / "site" / "index.html").read_text()


def test_markdown_tables_become_html_with_escaped_cells() -> None:
    """Pipes become a table, right-aligned columns get `num`, text is escaped, code kept."""
    text = "Run `x` <now>\n\n| run | p99 ms |\n| --- | ---: |\n| a<b | **9** |\n"
    html = markdown(text)
    assert "<p>Run <code>x</code> &lt;now&gt;</p>" in html
    assert '<td class="num"><strong>9</strong></td>' in html
    assert "<td>a&lt;b</td>" in html
