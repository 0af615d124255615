"""MkDocs hooks: the pages' generated parts, made at build time from the code and the
benchmarks' JSON, so that they cannot drift from what they describe.

- `<!-- options: COMMAND -->`: the options of `mnistlab COMMAND`, from its parser (whose
  options are made from the config dataclasses' fields).
- `<!-- http-api -->`: the routes of the HTTP API, from the app's OpenAPI document.
- `<!-- results: NAME -->`: the tables of benchmarks/results/NAME.json.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
MARK = re.compile(r"<!-- (options|http-api|results)(?:: ([\w-]+))? -->")


def on_page_markdown(markdown: str, page, config, files) -> str:
    return MARK.sub(lambda m: _generated(m[1], m[2]), markdown)


def _generated(kind: str, name: str | None) -> str:
    if kind == "options":
        return options_table(name)
    if kind == "http-api":
        return http_api()
    return results(name)


def _cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def options_table(command: str) -> str:
    from mnistlab.cli import build_parser

    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    rows = ["| option | default | meaning |", "| --- | --- | --- |"]
    for action in sub.choices[command]._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        if action.option_strings:
            name = ", ".join(f"`{s}`" for s in action.option_strings)
            if action.nargs != 0:
                name += f" `{action.metavar or action.dest.upper()}`"
        else:
            name = f"`{action.metavar or action.dest.upper()}`"
        default = action.default
        shown = "" if default in (None, False, argparse.SUPPRESS) else f"`{default}`"
        meaning = action.help or ""
        if action.choices and not isinstance(action.choices, dict):
            meaning += f" (one of {', '.join(f'`{c}`' for c in action.choices)})"
        rows.append(f"| {name} | {_cell(shown)} | {_cell(meaning)} |")
    return "\n".join(rows)


def http_api() -> str:
    from mnistlab.config import ServeConfig
    from mnistlab.serve import create_app

    spec = create_app(ServeConfig(run="run")).openapi()
    out = [f"OpenAPI {spec['openapi']}; the whole document is served at `/openapi.json`.", ""]
    out += ["| method | path | what | answers |", "| --- | --- | --- | --- |"]
    for path, methods in spec["paths"].items():
        for method, op in methods.items():
            what = op.get("description") or op.get("summary", "")
            codes = ", ".join(sorted(op.get("responses", {})))
            out.append(f"| {method.upper()} | `{path}` | {_cell(what)} | {codes} |")
    out += ["", "Request and response bodies:", ""]
    for name, schema in sorted(spec.get("components", {}).get("schemas", {}).items()):
        fields = schema.get("properties", {})
        if not fields:
            continue
        out.append(f"**{name}**: " + "; ".join(
            f"`{k}` ({_type(v)}){': ' + _cell(v['description']) if v.get('description') else ''}"
            for k, v in fields.items()
        ))  # fmt: skip
        out.append("")
    return "\n".join(out)


def _type(schema: dict) -> str:
    if "$ref" in schema:
        return schema["$ref"].rsplit("/", 1)[1]
    if "anyOf" in schema:
        return " or ".join(_type(s) for s in schema["anyOf"])
    if schema.get("type") == "array":
        return f"array of {_type(schema.get('items', {}))}"
    return schema.get("type", "any")


def results(name: str) -> str:
    """A benchmark's JSON: what was run and where, then its tables and targets."""
    record = json.loads((RESULTS / f"{name}.json").read_text())
    machine = record["machine"]
    versions = ", ".join(f"{k} {v}" for k, v in record["versions"].items())
    out = [
        f"`{record['command']}` ({record['date']}; {machine}; {versions})",
        "",
    ]
    for table in record.get("tables", []):
        if table.get("title"):
            out += [f"**{table['title']}**", ""]
        out.append("| " + " | ".join(map(_cell, table["columns"])) + " |")
        out.append("|" + " --- |" * len(table["columns"]))
        out += ["| " + " | ".join(map(_cell, row)) + " |" for row in table["rows"]]
        out.append("")
    targets = record.get("targets", [])
    if targets:
        out += ["| target | measured | |", "| --- | --- | --- |"]
        for t in targets:
            state = "met" if t["met"] else "**not met**"
            out.append(f"| {_cell(t['target'])} | {_cell(t['measured'])} | {state} |")
        out.append("")
    for note in record.get("notes", []):
        out += [note, ""]
    return "\n".join(out)
