"""Verdicts: one machine against the paper (or against another results file), hardware-normalised.

Every twin reference (kind `normalised` in configs/reference/*.yaml) is decided from one machine's
own runs: the paper's value over the limit of its own hardware against our value over the same
limit measured here (twins.py says how each is measured). A verdict row is PASS or FAIL when the
machine measured the quantity under the twin's conditions, and "not measured" with the reason
otherwise. Proxies (HFReduce / best MPI where there is no NCCL) say so in their row.

    verdicts(runs, refs) -> list[Verdict]                runs of ONE machine (machines.group)
    verdicts_against(new_runs, old_runs, refs, lower, upper) -> list[Verdict]   the old machine
                                                         plays the paper
    verdict_lines(rows, markdown=False) -> list[str]     <= 120 columns as text
    summary(rows) -> str
    print_verdict(result_paths, reference) -> exit status   (what `make bench` ends with)
"""
import math
import re
from dataclasses import dataclass, field

from ffbench.analysis import twins
from ffbench.analysis.compare import load_reference, mismatches
from ffbench.data import machines as machmod
from ffbench.data import results as resmod

PASS, FAIL, NOT_MEASURED = "PASS", "FAIL", "not measured"


@dataclass
class Verdict:
    ref_id: str              # the twin's id in the reference file, e.g. "R5.eff"
    capability: str          # e.g. "HFReduce efficiency: algbw / host-memory ceiling"
    paper: float | None      # the paper's normalised value
    paper_text: str          # e.g. "0.60 (8 of 13.3 GB/s)"
    measured: float | None   # this machine's normalised value
    measured_text: str       # e.g. "0.31 (3.9 of 12.5 GB/s)"
    ratio: float | None      # measured / paper
    status: str              # PASS | FAIL | not measured
    reason: str              # one short reason
    tolerance: str = ""      # e.g. "at least 80% of the paper's efficiency"
    proxy: bool = False      # True when the quantity stands in for the paper's (labelled)
    where: str = ""          # results file:/runs/<id> the numbers came from
    twin_of: list = field(default_factory=list)   # raw reference ids this twin carries
    detail: str = ""         # longer text for --all and the report (denominator, conditions)
    unit: str = ""


def _bounds(value, lower, upper):
    lo = value * (1 + lower) if lower is not None else -math.inf
    hi = value * (1 + upper) if upper is not None else math.inf
    return lo, hi


def _fmt(v):
    if v is None:
        return "-"
    return f"{v:.3g}" if abs(v) < 100 else f"{v:.0f}"


def _paper_text(ref):
    p = ref.paper
    text = p.get("text") or f"{p.get('value'):g} of {p.get('limit'):g} {p.get('unit', '')}".strip()
    return f"{_fmt(ref.value)} ({text})"


def _select(ref, evid):
    """(best comparable evidence, [other comparable], reason when none)."""
    covered = [e for e in evid if not mismatches(ref.match, e.fields)]
    if not covered:
        want = ", ".join(f"{k} {v}" for k, v in ref.match.items())
        return None, [], f"nothing here is {want}" if want else "no such measurement here"
    ok = [e for e in covered if not mismatches(ref.conditions, e.fields)]
    if not ok:
        best = min(covered, key=lambda e: len(mismatches(ref.conditions, e.fields)))
        why = "; ".join(m[1] for m in mismatches(ref.conditions, best.fields))
        return None, [], f"measured only under other conditions: {why}"
    ok.sort(key=lambda e: e.rank, reverse=True)
    return ok[0], ok[1:], ""


def evaluate(ref, runs, cache):
    """The verdict of one twin on one machine's runs."""
    evid, why = twins.evidence(ref.metric, runs, cache)
    base = dict(ref_id=ref.id, capability=ref.capability, paper=ref.value,
                paper_text=_paper_text(ref), tolerance=ref.tolerance, twin_of=ref.twin_of,
                unit=ref.unit)
    best, others, reason = _select(ref, evid) if evid else (None, [], why)
    if best is None:
        return Verdict(measured=None, measured_text="-", ratio=None, status=NOT_MEASURED,
                       reason=reason, **base)
    lo, hi = _bounds(ref.value, ref.lower, ref.upper)
    status = PASS if lo <= best.value <= hi else FAIL
    ratio = best.value / ref.value if ref.value else None
    proxy = ref.proxy or best.proxy
    bits = [twins.config_text(best)] + [best.note] * bool(best.note)
    if ref.metric in twins.BOUNDED_BY_ONE and best.value > 1.0:
        bits.append("above 1: the measured limit is lower than what ran")
    detail = "; ".join([best.text] + [best.extra.get("ceiling_text", "")] * bool(
        best.extra.get("ceiling_text")) + ([f"{len(others)} other comparable configuration(s)"]
                                           if others else []))
    if proxy:
        detail = f"proxy: {proxy}; {detail}"
    return Verdict(measured=best.value, measured_text=f"{_fmt(best.value)} ({best.text})",
                   ratio=ratio, status=status, reason="; ".join(bits), proxy=bool(proxy),
                   where=best.where, detail=detail, **base)


def _sweeps(runs):
    """One machine's runs split by the results file they came from, newest first: a twin takes
    its numerator and its denominator from one sweep, never one from each of two."""
    by_file = {}
    for r in runs:
        by_file.setdefault(getattr(r, "source", ""), []).append(r)
    return sorted(by_file.values(), key=lambda rs: max(str(r.attrs.get("date", "")) for r in rs),
                  reverse=True)


def verdicts(runs, refs):
    """Every twin on one machine: decided by the newest results file that decides it."""
    sweeps = _sweeps(runs)
    caches = [{} for _ in sweeps]
    out = []
    for ref in (r for r in refs if r.is_twin):
        rows = [evaluate(ref, rs, c) for rs, c in zip(sweeps, caches)]
        out.append(next((v for v in rows if v.status != NOT_MEASURED), rows[0] if rows else
                        evaluate(ref, runs, {})))
    return out


# ---- one results file against another -----------------------------------------------------

def _identity(e):
    """What makes two pieces of evidence the same configuration (sweep names may differ)."""
    return tuple(sorted((k, str(v)) for k, v in e.fields.items()
                        if k not in ("series", "program")))


def verdicts_against(new_runs, old_runs, refs, lower=-0.2, upper=None):
    """Twins evaluated on both files, machine by machine: each old machine's normalised value
    plays the paper's, against the new files' evidence of the same configuration."""
    new_e = {}
    for m in machmod.group(new_runs):
        cache = {}
        for ref in (r for r in refs if r.is_twin):
            new_e.setdefault(ref.id, []).extend(twins.evidence(ref.metric, m.runs, cache)[0])
    out = []
    for m in machmod.group(old_runs):
        cache = {}
        for ref in (r for r in refs if r.is_twin):
            old_e, _ = twins.evidence(ref.metric, m.runs, cache)
            old_best = _select(ref, old_e)[0] if old_e else None
            if old_best is not None:
                out.append(_against(ref, old_best, new_e.get(ref.id, []), lower, upper))
    return out


def _against(ref, old_best, new_e, lower, upper):
    base = dict(ref_id=ref.id, capability=ref.capability, paper=old_best.value,
                paper_text=f"{_fmt(old_best.value)} ({old_best.text})",
                tolerance=_tol_text(lower, upper), twin_of=ref.twin_of, unit=ref.unit)
    same = [e for e in new_e if _identity(e) == _identity(old_best)]
    if not same:
        covered = [e for e in new_e if not mismatches(ref.match, e.fields)]
        reason = f"{twins.config_text(old_best)} not measured in these results"
        if covered:
            near = max(covered, key=lambda e: e.rank)
            diffs = [f"{k} {v} vs {old_best.fields.get(k)}" for k, v in near.fields.items()
                     if str(v) != str(old_best.fields.get(k))]
            reason = "measured only under other conditions: " + "; ".join(diffs[:3])
        return Verdict(measured=None, measured_text="-", ratio=None, status=NOT_MEASURED,
                       reason=reason, **base)
    e = max(same, key=lambda x: x.rank)
    lo, hi = _bounds(old_best.value, lower, upper)
    status = PASS if lo <= e.value <= hi else FAIL
    why = ("as efficient on this hardware as the reference on its own" if status == PASS else
           "less efficient than the reference run: a software regression")
    return Verdict(measured=e.value, measured_text=f"{_fmt(e.value)} ({e.text})",
                   ratio=e.value / old_best.value if old_best.value else None, status=status,
                   reason=f"{twins.config_text(e)}; {why}", where=e.where, proxy=bool(e.proxy),
                   **base)


def _tol_text(lower, upper):
    parts = []
    if lower is not None:
        parts.append(f"at least {100 * (1 + lower):.0f}% of the reference")
    if upper is not None:
        parts.append(f"at most {100 * (1 + upper):.0f}%")
    return " and ".join(parts) or "any value"


# ---- output ---------------------------------------------------------------------------------

_SCALE = re.compile(r"^(.*?)\s*x([0-9.]+)$")


def display_rows(rows):
    """Rows for the table: every decided row; the "not measured" rows of one capability at
    several scales (retention x2 .. x80) collapsed into one."""
    out, seen = [], {}
    for r in rows:
        if r.status != NOT_MEASURED:
            out.append(r)
            continue
        m = _SCALE.match(r.capability)
        group = m.group(1) if m else r.capability
        if group in seen:
            c = seen[group]
            if m:
                c.scales.append(m.group(2))
                c.capability = f"{group} x{c.scales[0]}..x{c.scales[-1]}"
            continue
        c = Verdict(**{**r.__dict__})
        c.scales = [m.group(2)] if m else []
        seen[group] = c
        out.append(c)
    order = {PASS: 0, FAIL: 0, NOT_MEASURED: 1}
    return sorted(out, key=lambda r: order[r.status])


def _cut(text, width):
    return text if len(text) <= width else text[:width - 1] + "~"


HEAD = ["capability", "paper", "here", "ratio", "verdict", "reason"]
WIDTHS = [36, 6, 6, 5, 7, 0]
WIDTH = 120


def _text_table(rows):
    fmt = lambda cells: "  ".join(  # noqa: E731
        (_cut(c, w).ljust(w) if w else c) for c, w in zip(cells, WIDTHS)).rstrip()
    used = sum(WIDTHS) + 2 * (len(WIDTHS) - 1)
    lines = [fmt(HEAD), fmt(["-" * w if w else "-" * 6 for w in WIDTHS])]
    for r in rows:
        cap = r.capability + (" (proxy)" if r.proxy and "proxy" not in r.capability else "")
        lines.append(fmt([cap, _fmt(r.paper), _fmt(r.measured),
                          "-" if r.ratio is None else f"{r.ratio:.2f}", r.status,
                          _cut(r.reason, WIDTH - used)]))
    return lines


def _not_measured_lines(rows):
    """One line per reason: "not measured (reason): capability; capability; ..." wrapped."""
    by_reason = {}
    for r in rows:
        by_reason.setdefault(r.reason, []).append(r.capability)
    lines = []
    for reason, caps in by_reason.items():
        line = f"not measured ({_cut(reason, WIDTH - 40)}): "
        for i, c in enumerate(caps):
            piece = c + ("; " if i < len(caps) - 1 else "")
            if len(line) + len(piece) > WIDTH:
                lines.append(line.rstrip())
                line = "    "
            line += piece
        lines.append(line.rstrip())
    return lines


def verdict_lines(rows, markdown=False):
    """The verdict table: decided rows first; "not measured" rows, collapsed, after them (as
    rows in Markdown, as one wrapped line per reason in text, which fits 120 columns)."""
    rows = display_rows(rows)
    if markdown:
        head = ["capability", "paper (normalised)", "this machine", "ratio", "verdict", "reason",
                "tolerance"]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in rows:
            cap = r.capability + (" (proxy)" if r.proxy and "proxy" not in r.capability else "")
            cells = [cap, r.paper_text, r.measured_text,
                     "-" if r.ratio is None else f"{r.ratio:.2f}", r.status, r.reason,
                     r.tolerance]
            lines.append("| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |")
        return lines
    decided = [r for r in rows if r.status != NOT_MEASURED]
    lines = _text_table(decided) if decided else ["no verdict row could be decided here"]
    return lines + _not_measured_lines([r for r in rows if r.status == NOT_MEASURED])


def detail_lines(rows, markdown=False):
    """Every twin row by row (for --all and the report): id, status, tolerance, the numbers behind
    the decision and where they came from."""
    head = ["twin", "verdict", "tolerance", "numbers", "from"]
    body = [[r.ref_id, r.status, r.tolerance or "-",
             (f"paper {r.paper_text}; here {r.measured_text}" + (f"; {r.detail}" if r.detail
                                                                  else ""))
             if r.measured is not None else f"paper {r.paper_text}; {r.reason}", r.where or "-"]
            for r in rows]
    if markdown:
        return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + [
            "| " + " | ".join(c.replace("|", "\\|") for c in b) + " |" for b in body]
    return [f"{b[0]:<16} {b[1]:<12} {b[2]}: {b[3]} [{b[4]}]" for b in body]


def summary(rows):
    n = {s: sum(1 for r in rows if r.status == s) for s in (PASS, FAIL, NOT_MEASURED)}
    proxies = sum(1 for r in rows if r.proxy and r.status != NOT_MEASURED)
    tail = f" ({proxies} by proxy)" if proxies else ""
    return f"{n[PASS]} PASS, {n[FAIL]} FAIL, {n[NOT_MEASURED]} not measured{tail}"


def machine_verdicts(runs, refs):
    """[(machine, verdicts)] for every machine in `runs` that ran anything but models."""
    out = []
    for m in machmod.group(runs):
        if all(r.attrs.get("kind") == "model" for r in m.runs):
            continue
        out.append((m, verdicts(m.runs, refs)))
    return out


def print_verdict(result_paths, reference):
    """The verdict table of each machine in the results (what `make bench` ends with)."""
    runs = resmod.load_runs(result_paths)
    data, refs = load_reference(reference)
    name = data.get("name", "")
    groups = machine_verdicts(runs, refs)
    if not groups:
        print(f"verdict: no measurements in {', '.join(result_paths)}")
        return 0
    for m, rows in groups:
        print(f"verdict against {name} (normalised by this machine's own limits): {m.name}")
        for line in verdict_lines(rows):
            print(line)
        print(f"{summary(rows)}; row by row: scripts/ffbench compare "
              f"{' '.join(result_paths)} --all")
    return 1 if any(r.status == FAIL for _, rows in groups for r in rows) else 0


# ---- hardware or software: what a raw difference between two results files shows ------------

HARDWARE, SOFTWARE, UNDETERMINED = "hardware", "software", "undetermined"


def _limits(runs):
    """{id(run): (limit name, GB/s or None)} -> the limit each row of a run is normalised by."""
    out = {}
    for m in machmod.group(runs):
        membw = twins.host_membw(m.runs)
        fio = {}
        for e in twins.storage_tool_ratio(m.runs)[0]:
            fio.setdefault(e.fields["phase"], _fio_bw(e))
        for run in m.runs:
            out[id(run)] = (membw[0] if membw else None, fio)
    return out


def _fio_bw(e):
    return e.extra.get("fio_bw")


def _row_limit(row, limits):
    """(name, value) of the limit that bounds a raw row on its own machine, or (name, None)."""
    run = row["run"]
    membw, fio = limits.get(id(run), (None, {}))
    if "workload" in row:
        phase = "read" if str(row.get("phase", "")).startswith(("read", "epoch", "restore")) \
            else "write"
        return f"fio {phase} on the same directory", fio.get(phase)
    if int(row.get("nodes", 1) or 1) > 1:
        rate, _ = twins.link_rate_gbit(run)
        if rate:
            return "link rate", rate / 8.0
    return "host memory bandwidth", membw


def diagnose(rows, new_runs, old_runs, lower=-0.2, upper=None):
    """Set row.shows on every paired row: a FAIL whose value normalised by each machine's own
    limit is within the tolerance shows a hardware difference; one that stays outside shows a
    software regression (or an unmeasured limit: undetermined)."""
    new_lim, old_lim = _limits(new_runs), _limits(old_runs)
    for r in rows:
        if r.pair is None or r.measured is None or not r.ref.value:
            continue
        orow, nrow = r.pair
        oname, olim = _row_limit(orow, old_lim)
        _, nlim = _row_limit(nrow, new_lim)
        if not olim or not nlim:
            if r.status == FAIL:
                r.shows = f"{UNDETERMINED}: {oname} not measured in both files"
            continue
        norm = (r.measured / nlim) / (r.ref.value / olim)
        lo, hi = _bounds(1.0, lower, upper)
        if lo <= norm <= hi:
            if r.status == FAIL:
                r.shows = (f"{HARDWARE}: {oname} {nlim:.3g} vs {olim:.3g} GB/s; normalised "
                           f"{norm:.2f} of the reference")
        elif norm < lo:
            r.shows = (f"{SOFTWARE}: {norm:.2f} of the reference's efficiency on its own "
                       f"{oname} ({nlim:.3g} vs {olim:.3g} GB/s)")
            if r.status == PASS:
                r.shows += ", hidden by faster hardware"
        else:
            r.shows = f"normalised {norm:.2f} of the reference (more efficient)"
    return rows


def diagnosis_summary(rows):
    fails = [r for r in rows if r.status == FAIL]
    n = {k: sum(1 for r in fails if r.shows.startswith(k)) for k in (HARDWARE, SOFTWARE,
                                                                       UNDETERMINED)}
    hidden = sum(1 for r in rows if r.status == PASS and r.shows.startswith(SOFTWARE))
    text = (f"of {len(fails)} FAIL row(s): {n[HARDWARE]} show a hardware difference, "
            f"{n[SOFTWARE]} a software regression, {n[UNDETERMINED]} undetermined")
    if hidden:
        text += f"; {hidden} PASS row(s) hide a software regression behind faster hardware"
    return text
