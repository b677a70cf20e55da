"""`lab report`: a static site from the results files, and the feed the portfolio fetches.

`build_site` reads the claims file, the latest verify file (none: every claim shows
"not verified", never met), every benchmark's newest results file and every
experiment's results, and writes plain HTML pages into one folder: the index (each
claim quoted, with its status and figures) and one page per lab (its claims, its
benchmarks with the tables `lab bench` prints and figures drawn from the same file,
its experiments with their own plots and matrices). A lab with no results says so.
`latest.json` (benchmarks/site/feed.py) goes into the site and, when asked, to the
committed feed path. Building runs nothing and connects to no server.
"""

import html
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import report
from benchmarks.claims import Claim, figure, load_claims, resolve
from benchmarks.site import pages, plots
from benchmarks.site.feed import build_feed
from benchmarks.site.labs import LABS, LabPage, Matrix
from labs.experiments import EXPERIMENTS
from labs.paths import project_root

STYLE = Path(__file__).parent / "style.css"
BENCH_RESULTS = Path(__file__).parents[1] / "results"
_FIGURES: tuple[tuple[str, Callable[[dict[str, Any], Path], Path | None], str, str], ...] = (
    ("percentiles", plots.percentiles, "Latency percentiles per run", ""),
    (
        "histogram",
        plots.histogram,
        "Latency histogram",
        "this results file predates the recorded histogram: rerun the benchmark to draw it",
    ),
    (
        "timeline",
        plots.timeline,
        "Latency percentiles over time",
        "this results file predates the kept Locust history: rerun the benchmark to draw it",
    ),
    ("ratios", plots.ratios, "Against the peers, same run", "no peer ratios in this results file"),
)


@dataclass(frozen=True)
class Site:
    """Where the site goes and what it is built from."""

    out: Path
    results_root: Path = BENCH_RESULTS
    project: Path = field(default_factory=project_root)

    def relative(self, path: Path) -> str:
        """A path as the page shows it: from the project root."""
        try:
            return str(path.resolve().relative_to(self.project.resolve()))
        except ValueError:
            return str(path)

    def copy(self, source: Path, name: str) -> str:
        """Copy `source` into the site's assets; return its address from a page."""
        assets = self.out / "assets"
        assets.mkdir(exist_ok=True)
        shutil.copyfile(source, assets / name)
        return f"assets/{name}"


def _bench_section(site: Site, target: str) -> str:
    latest = report.latest(site.results_root / target)
    if latest is None:
        return pages.missing(f"lab bench {target}", "no results yet: run it to fill this section")
    document = report.load(latest)
    parts = [
        f'<h3 id="bench-{html.escape(target)}"><code>lab bench {html.escape(target)}</code></h3>'
    ]
    parts.append(f'<p class="file">{html.escape(site.relative(latest))}</p>')
    sibling = latest.with_suffix(".png")
    if sibling.exists():
        parts.append(
            pages.image(site.copy(sibling, f"{target}-{sibling.name}"), f"lab bench {target}")
        )
    if document["results"].get("runs"):
        for key, draw, title, why in _FIGURES:
            drawn = draw(document, site.out / "assets" / f"{target}-{key}.png")
            parts.append(
                pages.image(f"assets/{drawn.name}", title) if drawn else pages.missing(title, why)
            )
    parts.append(pages.markdown(report.render_table(document)))
    return "\n".join(parts)


def _matrix(document: dict[str, Any], matrix: Matrix) -> str:
    records = [record for record in resolve(document, matrix.records) if isinstance(record, dict)]

    def label(record: dict[str, Any]) -> str:
        return " ".join(
            f"{record[f]}" if i == 0 else f"{f} {record[f]}"
            for i, f in enumerate(matrix.row)
            if record.get(f) is not None
        )

    if matrix.column is None:
        rows = [
            [html.escape(label(r)), *(html.escape(figure(r.get(v))) for v in matrix.values)]
            for r in records
        ]
        columns = [", ".join(matrix.row), *matrix.values]
    else:
        keys = list(dict.fromkeys(r[matrix.column] for r in records))
        cells = {(label(r), r[matrix.column]): r.get(matrix.values[0]) for r in records}
        labels = list(dict.fromkeys(label(r) for r in records))
        rows = [
            [html.escape(name), *(html.escape(figure(cells.get((name, key)))) for key in keys)]
            for name in labels
        ]
        columns = [", ".join(matrix.row), *(f"{matrix.column} {key}" for key in keys)]
    numeric = set(range(1, len(columns)))
    return f"<h4>{html.escape(matrix.title)}</h4>" + pages.table(
        [html.escape(c) for c in columns], rows, numeric
    )


def _checks(document: dict[str, Any]) -> str:
    checks = document["results"].get("checks")
    if not isinstance(checks, list):
        return ""
    rows = [
        [
            html.escape(str(c.get("name"))),
            pages.badge("met" if c.get("passed") else "not met"),
            html.escape(str(c.get("figure", ""))),
        ]
        for c in checks
    ]
    return "<h4>Checks</h4>" + pages.table(["check", "verdict", "figure"], rows)


def _experiment_section(site: Site, lab: LabPage) -> str:
    registered = [EXPERIMENTS[name] for name in lab.experiments if name in EXPERIMENTS]
    if not registered:
        names = ", ".join(f"`lab experiment {name}`" for name in lab.experiments)
        return pages.missing("No experiment yet", f"{names} is not registered yet") if names else ""
    parts = []
    for directory in dict.fromkeys(site.project / entry.results for entry in registered):
        for path in sorted(directory.glob("*.json")):
            document = report.load(path)
            summary = document["results"].get("summary") or document["results"].get("claim") or ""
            parts.append(
                f'<h3 id="experiment-{html.escape(path.stem)}">{html.escape(path.stem)}</h3>'
            )
            where = (
                f"{site.relative(path)} — {document.get('size')}, commit {document.get('commit')}, "
                f"{document.get('generated_at')}"
            )
            parts.append(f'<p class="file">{html.escape(where)}</p>')
            if summary:
                parts.append(f"<p>{pages.inline(summary)}</p>")
            png = path.with_suffix(".png")
            if png.exists():
                parts.append(pages.image(site.copy(png, f"{lab.slug}-{png.name}"), path.stem))
            parts.extend(_matrix(document, m) for m in lab.matrices if m.results == path.stem)
            parts.append(_checks(document))
    return "\n".join(parts) or pages.missing(
        "No experiment results yet", "run the experiments named above"
    )


def _lab_claims(lab: LabPage, feed: dict[str, Any]) -> list[dict[str, Any]]:
    commands = {f"lab bench {name}" for name in lab.benches} | {
        f"lab experiment {name}" for name in lab.experiments
    }
    return [
        entry
        for entry in feed["claims"]
        if entry["part"] == lab.part
        or any(
            (measure.get("command") or "").split(" --")[0] in commands
            for measure in entry["measures"]
        )
    ]


def _lab_page(site: Site, lab: LabPage, feed: dict[str, Any]) -> str:
    benches = "\n".join(_bench_section(site, target) for target in lab.benches)
    body = (
        f'<p class="lead">{html.escape(lab.summary)}</p>'
        f"<h2>Claims</h2>{pages.claims_list(_lab_claims(lab, feed))}"
        + (f"<h2>Benchmarks</h2>{benches}" if lab.benches else "")
        + (f"<h2>Experiments</h2>{_experiment_section(site, lab)}" if lab.experiments else "")
    )
    return pages.document(lab.title, body, LABS, lab.slug)


def _index(feed: dict[str, Any], page_of: dict[str, str]) -> str:
    verify = feed["verify"]
    if verify is None:
        context = (
            '<p class="lead">Not verified: no <code>lab verify</code> has run, so no claim is '
            "shown as met.</p>"
        )
    else:
        context = (
            f'<p class="lead">From <code>lab verify</code> ({html.escape(str(verify["mode"]))}) of '
            f"{html.escape(str(verify['date']))}, commit {html.escape(str(verify['commit']))}, on "
            f"{html.escape(str(verify['machine']))}. A claim is met only when every measure is; "
            "each figure names the results file and the machine it came from.</p>"
        )
    counts = "".join(
        f"<li>{pages.badge(status)} {count}</li>"
        for status, count in sorted(feed["counts"].items())
    )
    overview = pages.table(
        ["claim", "part", "status"],
        (
            [
                f'<a href="#{html.escape(entry["id"])}">{html.escape(entry["id"])}</a>',
                html.escape(entry["part"]),
                pages.badge(entry["status"]),
            ]
            for entry in feed["claims"]
        ),
    )
    body = (
        f'{context}<ul class="counts">{counts}</ul>{overview}'
        f"<h2>Each claim, quoted, with its figures</h2>{pages.claims_list(feed['claims'], page_of)}"
    )
    return pages.document("Claims and what the lab measured", body, LABS, "index")


def build_site(
    out: Path,
    *,
    verify_file: Path | None,
    feed_path: Path | None = None,
    results_root: Path = BENCH_RESULTS,
    claims: list[Claim] | None = None,
) -> Path:
    """Write the site into `out` (and the feed to `feed_path`); return the index page."""
    site = Site(out=out, results_root=results_root)
    out.mkdir(parents=True, exist_ok=True)
    (out / "assets").mkdir(exist_ok=True)
    shutil.copyfile(STYLE, out / "style.css")
    page_of = {lab.part: f"{lab.slug}.html" for lab in LABS}
    verify = report.load(verify_file) if verify_file else None
    feed = build_feed(
        claims or load_claims(),
        verify,
        site.relative(verify_file) if verify_file else None,
        page_of,
    )
    text = json.dumps(feed, indent=2) + "\n"
    (out / "latest.json").write_text(text)
    if feed_path is not None:
        feed_path.write_text(text)
    for lab in LABS:
        (out / f"{lab.slug}.html").write_text(_lab_page(site, lab, feed))
    index = out / "index.html"
    index.write_text(_index(feed, page_of))
    return index
