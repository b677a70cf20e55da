"""The report builder without a verify, and the Markdown it turns into HTML."""

import json
from pathlib import Path

from benchmarks.site import build_site
from benchmarks.site.pages import markdown


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
