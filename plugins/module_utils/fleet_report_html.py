# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet report (``fleet_report.build_report``) as one self-contained HTML page for a browser.

One file, no script, no external font, image or URL: inline CSS only, so it opens from disk, from a mail attachment
or an artefact store, and prints. Every text that comes from the inventory or the hosts (host and group names,
model ids, reasons) is escaped.

Layout: a header (model or candidates, scenario, reserve), total tiles, a legend, then the matrix: rows are hosts
grouped under their inventory group and GPU class (data-centre first), columns are the candidate models. Each cell
is coloured by verdict and also says it in words (fits / tight / insufficient / unsupported / out of band /
unreachable), with the GPUs needed and the largest context that fits; the chosen model of each host is outlined and
marked. A footer row gives per-candidate totals; below the matrix, every host's justification and every rejection
reason, then the selection rules.

The output is deterministic (no timestamp), so rewriting an unchanged report changes nothing.

Pure functions, standard library only.
"""

import html

from ansible_collections.llmops.deploy.plugins.module_utils import fleet_report, model_selection

# Verdict/state -> (CSS class, label shown in the cell).
CELL_STYLES = {
    "fits": ("fits", "Fits"),
    "tight": ("tight", "Tight"),
    "insufficient": ("insufficient", "Insufficient"),
    "unsupported": ("insufficient", "Unsupported"),
    "band": ("band", "Out of band"),
    "unreachable": ("unreachable", "Unreachable"),
    "failed": ("unreachable", "Check failed"),
    "unchecked": ("unreachable", "Not checked"),
}

# Colours (also asserted by the browser test): background, strong text/border.
COLOURS = {
    "fits": ("#d3f0da", "#146c2e"),
    "tight": ("#ffe9b3", "#8a5300"),
    "insufficient": ("#f9d0cc", "#a50e0e"),
    "band": ("#e3e6f3", "#3c4675"),
    "unreachable": ("#e4e4e4", "#4a4a4a"),
    "chosen": ("#1a56db", "#ffffff"),
}

CLASS_ORDER = ("datacenter", "mixed", "consumer", "unknown", "none", "cpu")

_CSS = """
*{box-sizing:border-box}
html{-webkit-print-color-adjust:exact;print-color-adjust:exact}
body{margin:0;padding:20px 24px 32px;font:13px/1.4 "DejaVu Sans","Liberation Sans",Helvetica,Arial,sans-serif;
 color:#1f2328;background:#f6f7f9}
h1{font-size:22px;margin:0 0 4px}
h2{font-size:16px;margin:26px 0 8px}
.sub{color:#4b5563;margin:0 0 2px}
.sub b{color:#1f2328}
code,.mono{font-family:"DejaVu Sans Mono",Menlo,Consolas,monospace;font-size:12px}
.tiles{display:flex;flex-wrap:wrap;gap:10px;margin:14px 0 10px}
.tile{background:#fff;border:1px solid #d0d7de;border-left:6px solid #8c959f;border-radius:6px;padding:8px 14px;
 min-width:118px}
.tile .n{font-size:24px;font-weight:bold;line-height:1.1}
.tile .l{color:#4b5563;font-size:12px}
.tile.fits{border-left-color:%(fits_fg)s}.tile.tight{border-left-color:%(tight_fg)s}
.tile.insufficient{border-left-color:%(insufficient_fg)s}.tile.unreachable{border-left-color:%(unreachable_fg)s}
.tile.chosen{border-left-color:%(chosen_bg)s}
.legend{display:flex;flex-wrap:wrap;gap:8px 14px;align-items:center;margin:4px 0 12px;color:#4b5563;font-size:12px}
.swatch{display:inline-block;padding:1px 8px;border-radius:3px;font-weight:bold;font-size:11px;
 text-transform:uppercase;letter-spacing:.03em}
.picks{margin:2px 0 0;padding:0;list-style:none;display:flex;flex-wrap:wrap;gap:6px}
.picks li{background:#fff;border:1px solid #d0d7de;border-radius:12px;padding:2px 10px;font-size:12px}
table.matrix{width:100%%;border-collapse:separate;border-spacing:0;table-layout:fixed;background:#fff;
 border:1px solid #d0d7de;border-radius:6px}
.matrix th,.matrix td{padding:6px 8px;vertical-align:top;border-bottom:1px solid #e5e7eb;text-align:left}
.matrix thead th{background:#f0f2f5;font-size:12px;border-bottom:2px solid #c9d1d9}
.matrix thead th.host{width:210px}
.cand .owner{display:block;color:#57606a;font-weight:normal;font-size:11px}
.cand .name{display:block;font-size:12.5px;overflow-wrap:anywhere}
.cand .spec{display:block;color:#57606a;font-weight:normal;font-size:11px;margin-top:2px}
.cand .tag{display:inline-block;margin-top:3px;padding:0 5px;border-radius:3px;background:#fff;color:#57606a;
 border:1px dashed #8c959f;font-weight:normal;font-size:10.5px}
tr.group th{background:#eef1f6;color:#24292f;font-size:12px;padding:5px 8px;border-top:1px solid #d0d7de}
tr.group .cls{display:inline-block;margin-left:6px;padding:0 6px;border-radius:8px;background:#fff;
 border:1px solid #c9d1d9;font-weight:normal;font-size:11px}
tr.group .gpus{font-weight:normal;color:#57606a;margin-left:6px}
caption{caption-side:top;text-align:left;padding:0 0 6px;color:#4b5563}
th.hostcell{font-weight:normal;background:#fff}
.hostcell .hn{font-weight:bold;overflow-wrap:anywhere}
.hostcell .hw{color:#57606a;font-size:11px}
.hostcell .pick{font-size:11px;margin-top:2px;overflow-wrap:anywhere}
.hostcell .pick.none{color:%(insufficient_fg)s}
td.cell{border-left:1px solid #fff;font-size:12px}
td.cell .v{display:block;font-weight:bold;text-transform:uppercase;font-size:11px;letter-spacing:.03em}
td.cell .d{display:block}
td.cell .why{display:block;font-size:11px;opacity:.9;overflow-wrap:anywhere}
td.fits,.swatch.fits{background:%(fits_bg)s;color:%(fits_fg)s}
td.tight,.swatch.tight{background:%(tight_bg)s;color:%(tight_fg)s}
td.insufficient,.swatch.insufficient{background:%(insufficient_bg)s;color:%(insufficient_fg)s}
td.band,.swatch.band{background:%(band_bg)s;color:%(band_fg)s}
td.unreachable,.swatch.unreachable{background:%(unreachable_bg)s;color:%(unreachable_fg)s}
td.cell.chosen{box-shadow:inset 0 0 0 3px %(chosen_bg)s}
.badge{display:inline-block;margin-top:3px;padding:0 6px;border-radius:3px;background:%(chosen_bg)s;
 color:%(chosen_fg)s;font-weight:bold;font-size:10.5px;letter-spacing:.04em}
.swatch.chosen{background:#fff;color:%(chosen_bg)s;box-shadow:inset 0 0 0 2px %(chosen_bg)s}
tfoot td,tfoot th{background:#f0f2f5;font-size:11px;border-top:2px solid #c9d1d9;border-bottom:0}
.count{display:inline-block;margin:0 4px 2px 0;padding:0 5px;border-radius:3px}
.count.fits{background:%(fits_bg)s;color:%(fits_fg)s}.count.tight{background:%(tight_bg)s;color:%(tight_fg)s}
.count.insufficient{background:%(insufficient_bg)s;color:%(insufficient_fg)s}
.count.band{background:%(band_bg)s;color:%(band_fg)s}.count.unreachable{background:%(unreachable_bg)s;
 color:%(unreachable_fg)s}
.count.chosen{background:%(chosen_bg)s;color:%(chosen_fg)s;font-weight:bold}
.why-list{background:#fff;border:1px solid #d0d7de;border-radius:6px;padding:4px 14px}
.host-why{padding:8px 0;border-bottom:1px solid #eaeef2}
.host-why:last-child{border-bottom:0}
.host-why h3{font-size:13px;margin:0 0 3px;overflow-wrap:anywhere}
.host-why p{margin:0 0 4px}
.host-why ul{margin:0;padding-left:18px}
.host-why ul.over{color:#24292f}
.host-why ul.rejected{color:#57606a}
.host-why li{margin:1px 0}
.rules{display:flex;gap:24px;flex-wrap:wrap}
.rules div{flex:1 1 420px;background:#fff;border:1px solid #d0d7de;border-radius:6px;padding:6px 14px}
.rules h3{font-size:13px;margin:4px 0}
.rules ol{margin:4px 0 6px;padding-left:20px}
footer{margin-top:20px;color:#6e7781;font-size:11px}
@media print{
 body{background:#fff;padding:0;font-size:11px}
 .tile,.why-list,.rules div,table.matrix{border-color:#999}
 tr,.host-why{break-inside:avoid}
 thead{display:table-header-group}
}
"""


def _e(text):
    return html.escape("" if text is None else str(text), quote=True)


def _wrap_id(text):
    """Escaped text with break opportunities after '-', '_', '.' and '/' (long model ids in narrow columns)."""
    out = _e(text)
    for sep in ("-", "_", ".", "/"):
        out = out.replace(sep, sep + "<wbr>")
    return out


def css():
    """The stylesheet, with the colours of COLOURS."""
    values = {}
    for name, (background, foreground) in COLOURS.items():
        values[name + "_bg"] = background
        values[name + "_fg"] = foreground
    return _CSS % values


def cell_style(cell):
    """``(css class, label)`` for a matrix cell."""
    if cell.get("rule") == "band":
        return CELL_STYLES["band"]
    if cell.get("rule") == "capability":
        return CELL_STYLES["unsupported"]
    return CELL_STYLES.get(cell.get("verdict"), CELL_STYLES["unchecked"])


def _gpus(count):
    return "%s GPU%s" % (count, "" if count == 1 else "s")


def _gb(value):
    """GB for a glance: 1099.512 -> '1100', 85.899 -> '85.9', None -> '?'."""
    if value is None:
        return "?"
    if value >= 100:
        return "%d" % round(value)
    return ("%.1f" % value).rstrip("0").rstrip(".")


def _has_context(report):
    return any(cell.get("max_context_length") is not None for cells in report["matrix"].values()
               for cell in cells.values())


def short_note(cell, row, scenario=None):
    """A few words under the verdict: the GPUs needed and context, or the gist of the rejection."""
    rule = cell.get("rule")
    reason = cell.get("reason") or ""
    if rule == "band":
        return "outside %s" % scenario["params_band"] if scenario else "outside the scenario's band"
    if rule == "capability":
        return reason.split(",")[0]
    if rule == "unchecked":
        if cell.get("verdict") == "unreachable":
            return "no connection"
        return "not a candidate here" if reason == "not a candidate on this host" else "see the reasons below"
    if rule == "resources" or cell.get("verdict") == "insufficient":
        needed = cell.get("gpus_needed")
        if reason.startswith("needs") and "GPU memory" in reason:
            if needed and row.get("gpu_count") is not None:
                return "needs %s, has %s" % (_gpus(needed), row["gpu_count"])
            return reason.split(" (")[0]
        if reason.startswith("no GPU"):
            return "no GPU"
        return reason.split(";")[0].split(" (")[0][:60]
    return None


def _cell_detail(cell, show_context):
    parts = []
    if cell.get("verdict") == "tight" and cell.get("gpus_minimum"):
        parts.append("%s without reserve" % _gpus(cell["gpus_minimum"]))
    elif cell.get("gpus_needed"):
        parts.append(_gpus(cell["gpus_needed"]))
    if show_context:
        parts.append("ctx %s" % fleet_report.context_label(cell.get("max_context_length")))
    return " \u00b7 ".join(parts)


def group_rows(rows):
    """Rows grouped for the matrix: ``[(group name, gpu class, gpu summary, rows)]``, data-centre groups first.

    A group's class is the best-known class of its hosts (an unreachable host does not hide the others').
    """
    by_group = {}
    order = []
    for row in rows:
        name = row["groups"][0] if row["groups"] else "ungrouped"
        if name not in by_group:
            by_group[name] = []
            order.append(name)
        by_group[name].append(row)
    groups = []
    for name in order:
        members = sorted(by_group[name], key=lambda r: r["host"])
        known = [r for r in members if r.get("gpu_class") not in (None, "unknown")]
        cls = known[0]["gpu_class"] if known else "unknown"
        summaries = sorted(set(r["gpu_summary"] for r in (known or members)))
        groups.append((name, cls, "; ".join(summaries), members))
    groups.sort(key=lambda g: (CLASS_ORDER.index(g[1]) if g[1] in CLASS_ORDER else len(CLASS_ORDER), g[0]))
    return groups


def _header(report, title):
    out = ["<header>", "<h1>%s</h1>" % _e(title)]
    s = report.get("sizing")
    scen = report.get("scenario")
    reserve = report.get("reserve")
    reserve_text = "" if reserve is None else ", keeping a <b>%d%%</b> reserve" % round(reserve * 100)
    if report.get("mode") == "candidates":
        out.append('<p class="sub">Choosing a model for each host among <b>%d candidate%s</b>%s%s.</p>' % (
            len(report["candidates"]), "" if len(report["candidates"]) == 1 else "s",
            "" if not scen else " for the <b>%s</b> scenario (%s: models <b>%s</b> at <b>%s</b>)" % (
                _e(scen["name"]), _e(scen["label"]), _e(scen["params_band"]), _e(scen["precisions_label"])),
            reserve_text))
    elif s:
        out.append('<p class="sub">Model <b class="mono">%s</b>: %s parameters at %s, %s method%s.</p>' % (
            _e(report.get("model") or s["params_label"]), _e(s["params_label"]), _e(s["precision_label"]),
            _e(s["method"]), reserve_text))
        needs = (_e(s["gpu_memory_gb"]), _e(s["cpu_memory_gb"]), _e(s["disk_gb"]), _e(s["cpu_cores_label"]))
        out.append('<p class="sub">Needs GPU memory <b>%s GB</b>, host RAM <b>%s GB</b>, disk <b>%s GB</b>, '
                   'CPU cores <b>%s</b> (guide 2.1).</p>' % needs)
        if fleet_report.seed_comparison_line(s):
            out.append('<p class="sub">%s</p>' % _e(fleet_report.seed_comparison_line(s)))
        if scen:
            out.append('<p class="sub">Scenario <b>%s</b> (%s): models %s at %s.</p>' % (
                _e(scen["name"]), _e(scen["label"]), _e(scen["params_band"]), _e(scen["precisions_label"])))
    out.append("</header>")
    return out


def _tiles(report):
    t = report["totals"]
    tiles = [("", t["hosts"], "hosts"),
             ("chosen", t.get("with_choice", t["fits"] + t["tight"]), "with a model chosen"),
             ("fits", t["fits"], "fit with the reserve"),
             ("tight", t["tight"], "tight (no reserve)"),
             ("insufficient", t["insufficient"], "insufficient"),
             ("unreachable", t["unreachable"] + t["failed"], "unreachable or failed")]
    out = ['<section class="tiles" aria-label="Totals">']
    for cls, number, label in tiles:
        out.append('<div class="tile %s"><div class="n">%d</div><div class="l">%s</div></div>' % (cls, number, label))
    out.append("</section>")
    picks = [(c["key"], c["totals"]["chosen"]) for c in report["candidates"] if c["totals"]["chosen"]]
    if report.get("mode") == "candidates" and picks:
        out.append('<ul class="picks" aria-label="Chosen models">')
        for key, count in picks:
            out.append('<li><span class="mono">%s</span> chosen on <b>%d</b> host%s</li>' % (
                _e(key), count, "" if count == 1 else "s"))
        out.append("</ul>")
    return out


def _legend(show_context):
    items = [("fits", "Fits", "holds the model with the reserve"),
             ("tight", "Tight", "holds it, not the reserve"),
             ("insufficient", "Insufficient", "/ unsupported precision"),
             ("band", "Out of band", "outside the scenario's sizes"),
             ("unreachable", "Unreachable", "/ not checked"),
             ("chosen", "\u2605 Chosen", "for the host")]
    out = ['<div class="legend" aria-label="Legend">']
    for cls, label, text in items:
        out.append('<span><span class="swatch %s">%s</span> %s</span>' % (cls, _e(label), _e(text)))
    if show_context:
        out.append("<span>ctx: the largest context that fits, in tokens</span>")
    out.append("</div>")
    return out


def _column_header(column, scen):
    model = column.get("model")
    key = column["key"]
    owner, name = key.split("/", 1) if model and "/" in key else ("", key)
    spec = [x for x in (column.get("params_label"), column.get("precision_label")) if x]
    if column.get("gpu_memory_gb") is not None:
        spec.append("%s GB" % _gb(column["gpu_memory_gb"]))
    tag = ""
    seed = column.get("seed")
    if seed and seed.get("differs"):
        tag += '<span class="tag" title="%s">guide\'s rule: %s GB</span>' % (
            _e(fleet_report.seed_comparison_line(column)), _gb(seed["gpu_memory_gb"]))
    if scen and column.get("precision") and not model_selection.recommended_precision(scen, column["precision"]):
        tag += '<span class="tag">%s not recommended for %s</span>' % (
            _e(column.get("precision_label")), _e(scen["name"]))
    return ('<th scope="col" class="cand" title="%s"><span class="owner">%s</span><span class="name">%s</span>'
            '<span class="spec">%s</span>%s</th>' % (
                _e(key), _wrap_id(owner + "/" if owner else ""), _wrap_id(name), _e(" \u00b7 ".join(spec)), tag))


def _matrix(report):
    columns = report["candidates"]
    scen = report.get("scenario")
    show_context = _has_context(report)
    candidates_mode = report.get("mode") == "candidates"
    out = ['<table class="matrix" id="matrix">',
           '<caption>Hosts, grouped by inventory group and GPU class, against the candidate models. The full '
           'reason of each cell is in its tooltip and under "Why" below.</caption>',
           '<thead><tr><th scope="col" class="host">Host</th>%s</tr></thead>' % "".join(
               _column_header(c, scen) for c in columns), "<tbody>"]
    for name, cls, summary, members in group_rows(report["hosts"]):
        out.append('<tr class="group"><th colspan="%d" scope="rowgroup">%s<span class="cls">%s</span>'
                   '<span class="gpus">%s</span></th></tr>' % (
                       len(columns) + 1, _e(name), _e(fleet_report.GPU_CLASS_LABELS.get(cls, cls)), _e(summary)))
        for row in members:
            out.append(_host_row(row, report["matrix"][row["host"]], columns, scen, candidates_mode, show_context))
    out.append("</tbody>")
    out.append(_footer_row(columns))
    out.append("</table>")
    return out


def _host_row(row, cells_of, columns, scen, candidates_mode, show_context):
    hardware = ["no GPU" if row["gpu_summary"] == "none" else row["gpu_summary"]]
    if row.get("ram_gb") is not None:
        hardware.append("%s GB RAM" % _gb(row["ram_gb"]))
    if row.get("cpu_cores") is not None:
        hardware.append("%s cores" % row["cpu_cores"])
    if row["chosen"]:
        pick = '<div class="pick">\u2192 <b class="mono">%s</b></div>' % _wrap_id(row["chosen"])
    else:
        pick = '<div class="pick none">%s (%s)</div>' % (
            "no candidate fits" if candidates_mode else "not deployable", _e(row["verdict"]))
    cells = ['<tr data-host="%s"><th scope="row" class="hostcell"><div class="hn">%s</div><div class="hw">%s</div>'
             '%s</th>' % (_e(row["host"]), _e(row["host"]), _e(", ".join(hardware)), pick)]
    for column in columns:
        cell = cells_of[column["key"]]
        cls, label = cell_style(cell)
        chosen = row["chosen"] == column["key"]
        note = short_note(cell, row, scen) if cell.get("status") == "rejected" else None
        parts = ['<span class="v">%s</span>' % _e(label)]
        detail = _cell_detail(cell, show_context) if not note else ""
        if detail:
            parts.append('<span class="d">%s</span>' % _e(detail))
        if note:
            parts.append('<span class="why">%s</span>' % _e(note))
        if chosen:
            parts.append('<span class="badge">\u2605 CHOSEN</span>')
        cells.append('<td class="cell %s%s" data-verdict="%s" data-candidate="%s" title="%s">%s</td>' % (
            cls, " chosen" if chosen else "", _e(cell.get("verdict")), _e(column["key"]),
            _e(cell.get("reason") or ""), "".join(parts)))
    cells.append("</tr>")
    return "".join(cells)


def _footer_row(columns):
    out = ['<tfoot><tr><th scope="row">Totals</th>']
    for column in columns:
        t = column["totals"]
        counts = [("fits", t["fits"], "fit"), ("tight", t["tight"], "tight"),
                  ("insufficient", t["insufficient"], "insufficient"), ("band", t.get("out_of_band", 0), "out of band"),
                  ("unreachable", t["unreachable"] + t["failed"] + t.get("unchecked", 0), "not checked")]
        parts = ['<span class="count %s">%d %s</span>' % (cls, n, label) for cls, n, label in counts if n]
        parts.append('<span class="count chosen">chosen on %d</span>' % t["chosen"])
        out.append('<td data-candidate="%s">%s</td>' % (_e(column["key"]), "".join(parts)))
    out.append("</tr></tfoot>")
    return "".join(out)


def _outcome_blocks(report):
    """Hosts with the same outcome together: ``[(hosts, row, rejected [(key, reason)])]`` in matrix order."""
    blocks = []
    index = {}
    for _name, _cls, _summary, members in group_rows(report["hosts"]):
        for row in members:
            cells = report["matrix"][row["host"]]
            rejected = tuple((c["key"], cells[c["key"]].get("reason") or "") for c in report["candidates"]
                             if cells[c["key"]].get("status") == "rejected")
            key = (row["chosen"], row["justification"], tuple(row["reasons"]) if not row["chosen"] else (), rejected)
            if key in index:
                blocks[index[key]][0].append(row["host"])
                continue
            index[key] = len(blocks)
            blocks.append(([row["host"]], row, rejected))
    return blocks


def _reasons(report):
    """Per host: the justification, what the chosen model beat and why, every rejection reason."""
    several = len(report["candidates"]) > 1
    out = ['<section class="why-list" id="reasons">']
    for hosts, row, rejected in _outcome_blocks(report):
        out.append('<div class="host-why"><h3>%s</h3>' % _e(", ".join(hosts)))
        if row["chosen"]:
            out.append('<p><b>Chosen:</b> %s</p>' % _e(row.get("summary") or row["justification"]))
            preferred = row.get("preferred_over") or []
            if preferred:
                out.append('<ul class="over">%s</ul>' % "".join(
                    '<li>over <span class="mono">%s</span>: %s</li>' % (_e(p["key"]), _e(p["why"]))
                    for p in preferred))
        elif not several or not rejected:
            out.append('<p><b>Not deployable (%s):</b> %s</p>' % (_e(row["verdict"]), _e("; ".join(row["reasons"]))))
        else:
            out.append('<p><b>No model chosen (%s):</b> every candidate is rejected.</p>' % _e(row["verdict"]))
        lines = model_selection.rejection_lines([{"key": k, "reason": r} for k, r in rejected])
        if rejected and several and lines[0].startswith("every candidate: "):
            out.append('<ul class="rejected"><li>%s</li></ul>' % _e(lines[0]))
        elif rejected and (several or row["chosen"]):
            out.append('<ul class="rejected">%s</ul>' % "".join(
                '<li>rejected <span class="mono">%s</span>: %s</li>' % (_e(key), _e(reason))
                for key, reason in rejected))
        warnings = row.get("warnings") or []
        if warnings:
            out.append('<ul class="warnings">%s</ul>' % "".join("<li>warning: %s</li>" % _e(w) for w in warnings))
        out.append("</div>")
    out.append("</section>")
    return out


def _rules(report):
    rules = report.get("rules") or {}
    out = ['<section class="rules" id="rules">', "<div><h3>A candidate is rejected when (in this order)</h3><ol>"]
    out += ["<li>%s</li>" % _e(text) for text in rules.get("rejections", [])]
    out.append("</ol></div><div><h3>Among the rest, the first difference decides</h3><ol>")
    out += ["<li>%s</li>" % _e(text) for text in rules.get("preferences", [])]
    out.append("</ol></div></section>")
    return out


def render_html(report, title=None):
    """The report as a complete HTML5 document (a str)."""
    if title is None:
        title = "Fleet preflight"
        if report.get("mode") != "candidates" and report.get("model"):
            title += ": %s" % report["model"]
    parts = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             "<title>%s</title>" % _e(title), "<style>%s</style>" % css(), "</head>", "<body>"]
    parts += _header(report, title)
    parts += _tiles(report)
    parts += _legend(_has_context(report))
    parts += _matrix(report)
    parts.append("<h2>Why</h2>")
    parts += _reasons(report)
    if report.get("mode") == "candidates":
        parts.append("<h2>How the model is chosen</h2>")
        parts += _rules(report)
    parts.append("<footer>Written by the llmops.deploy preflight role; sizing and selection follow the deployment "
                 "guide (chapters 2, 3 and 6).</footer>")
    parts += ["</body>", "</html>", ""]
    return "\n".join(parts)
