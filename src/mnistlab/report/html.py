"""Self-contained HTML pages: figures embedded as data URIs, no network, no scripts."""

from __future__ import annotations

import base64
import html
import typing

from mnistlab.runs import Run

# Fits a 390 px phone as well as a desktop: long values wrap, a wide table scrolls inside
# its own box, never the page.
STYLE = """
body { font-family: system-ui, sans-serif; margin: 1em auto; padding: 0 1em;
       max-width: 1100px; color: #222; }
p, code, td.text { overflow-wrap: anywhere; }
@media (max-width: 600px) { body { font-size: 14px; } th, td { padding: 0.2em 0.35em; } }
h1 { font-size: 1.6em; }
.table { overflow-x: auto; max-width: 100%; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: right; }
th { background: #f3f3f3; }
td.text, th.text { text-align: left; }
img.figure { max-width: 100%; display: block; margin: 1em 0; }
img.digit { width: 56px; height: 56px; image-rendering: pixelated; }
.headline { font-size: 1.4em; }
"""


PROVENANCE = ("backend", "cpu", "cpu_count", "platform")


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def page(title: str, body: str) -> str:
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>"
        f"<body><h1>{html.escape(title)}</h1>\n{body}\n</body></html>\n"
    )


def table(header: typing.Sequence[str], rows: typing.Iterable[typing.Sequence], text_columns=1):
    """An HTML table; the first `text_columns` columns are left-aligned text."""

    def cells(values, tag):
        return "".join(
            f"<{tag}{' class=text' if i < text_columns else ''}>{html.escape(str(v))}</{tag}>"
            for i, v in enumerate(values)
        )

    body = "".join(f"<tr>{cells(row, 'td')}</tr>" for row in rows)
    return f"<div class=table><table><tr>{cells(header, 'th')}</tr>{body}</table></div>"


def figure(png: bytes, alt: str) -> str:
    return f"<img class='figure' alt='{html.escape(alt)}' src='{data_uri(png)}'>"


def run_report(
    run: Run,
    evaluation: dict[str, typing.Any],
    figures: dict[str, bytes],
    mistakes: list[tuple[dict[str, typing.Any], bytes]],
) -> str:
    """The evaluation of one run: configuration, metrics, figures, most confident mistakes."""
    m = evaluation["metrics"]
    config_rows = list(run.config.to_dict().items())
    config_rows += [
        (k, v) for k, v in run.provenance.items() if k.endswith("_version") or k in PROVENANCE
    ]
    config_rows += [("data_sha256", run.data_sha256)]
    class_rows = [
        (name, f"{s['precision']:.4f}", f"{s['recall']:.4f}", f"{s['f1']:.4f}", s["support"])
        for name, s in [
            *((f"digit {k}", v) for k, v in m["per_class"].items()),
            ("macro avg", m["macro_avg"]),
            ("weighted avg", m["weighted_avg"]),
        ]
    ]
    mistake_rows = "".join(
        f"<tr><td><img class='digit' alt='test image {x['index']}' src='{data_uri(png)}'></td>"
        f"<td>{x['index']}</td><td>{x['true']}</td><td>{x['predicted']}</td>"
        f"<td>{x['confidence']:.4f}</td></tr>"
        for x, png in mistakes
    )
    body = "\n".join(
        [
            _headline(evaluation),
            "<h2>Metrics per class</h2>",
            table(["", "precision", "recall", "F1", "support"], class_rows),
            *_strings_section(evaluation.get("strings")),
            "<h2>Figures</h2>",
            *(figure(png, name) for name, png in figures.items()),
            f"<h2>The {len(mistakes)} most confident mistakes</h2>",
            "<div class=table><table><tr><th>image</th><th>test index</th><th>true</th>"
            f"<th>predicted</th><th>confidence</th></tr>{mistake_rows}</table></div>",
            "<h2>Configuration</h2>",
            table(["setting", "value"], config_rows, text_columns=2),
        ]
    )
    return page(f"mnistlab run {run.name}", body)


def _strings_section(strings: dict[str, typing.Any] | None) -> list[str]:
    """The string benchmark's figures (evaluate --strings), when it ran."""
    if strings is None:
        return []

    def percent(share: dict[str, typing.Any]) -> str:
        return "-" if share["accuracy"] is None else f"{100 * share['accuracy']:.1f}%"

    rows = [
        ("all strings", strings["n"], f"{100 * strings['string_accuracy']:.1f}%"),
        *((f"length {k}", v["n"], percent(v)) for k, v in strings["by_length"].items()),
        ("with a touching pair", strings["touching"]["n"], percent(strings["touching"])),
        ("no touching pair", strings["not_touching"]["n"], percent(strings["not_touching"])),
    ]
    return [
        "<h2>Reading numbers</h2>",
        f"<p>{strings['n']} numbers written with the test digits (seed {strings['seed']}), "
        f"read end to end: digit accuracy {100 * strings['digit_accuracy']:.2f}%, "
        f"{strings['strings_per_second']:.0f} strings per second.</p>",
        table(["strings", "n", "string accuracy"], rows),
    ]


def summary(evaluation: dict[str, typing.Any], figures: dict[str, bytes]) -> str:
    """An evaluation's headline and figures, as an HTML fragment (for a notebook)."""
    return "\n".join([_headline(evaluation), *(figure(png, name) for name, png in figures.items())])


def _headline(evaluation: dict[str, typing.Any]) -> str:
    m = evaluation["metrics"]
    return (
        f"<p class='headline'>Test accuracy <strong id='accuracy'>{m['accuracy']:.4f}</strong>"
        f" &middot; loss <strong id='loss'>{m['loss']:.4f}</strong> on {m['n']} images of "
        f"<code>{html.escape(evaluation['data_source'])}</code>, model "
        f"<code>{html.escape(evaluation['model'])}</code></p>"
    )


def compare_report(rows: list[dict[str, typing.Any]], curves: bytes, confusions: bytes) -> str:
    """Runs side by side: the summary table, overlaid curves, confusion matrices."""
    header = list(rows[0])
    body = "\n".join(
        [
            table(header, ([r[h] for h in header] for r in rows), text_columns=2),
            "<h2>Learning curves</h2>",
            figure(curves, "learning curves of every run"),
            "<h2>Confusion matrices</h2>",
            figure(confusions, "confusion matrix of every run"),
        ]
    )
    return page("mnistlab: runs compared", body)
