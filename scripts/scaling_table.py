#!/usr/bin/env python3
"""The scaling table of scripts/scaling.sh, from the JSON files it leaves in OUT/scaling.

    scaling_table.py OUT            markdown on stdout
    scaling_table.py --steps FLOW   the training steps a flow file has done (its metadata)

Standard library only. Flow rows: the chain of `eqflow sample --json` on OUT/long_L*.safetensors
(a wide flow trained on under a new learning-rate schedule), else OUT/wide_L*.safetensors (a best
flow grown wider and trained on), else OUT/best_L*.safetensors, else
OUT/transfer_L*.safetensors; HMC rows: `eqflow hmc --json`.
"""
import json
import os
import platform
import struct
import sys

SIZES = (6, 12, 20, 32, 64)


def metadata(path):
    """The safetensors header's __metadata__ of a flow file."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        return json.loads(f.read(n)).get("__metadata__", {})


def logged_hours(path):
    """Wall hours of training recorded in a flow's log (each resume continues the clock)."""
    try:
        with open(path + ".log.jsonl") as f:
            lines = [l for l in f if l.strip()]
    except FileNotFoundError:
        return None
    return json.loads(lines[-1])["seconds"] / 3600 if lines else 0.0


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def finite(obs):
    """An estimate with a value and an error (a chain too short for one has nulls)."""
    return obs is not None and obs.get("value") is not None and obs.get("error") is not None


def pm(obs, digits):
    if not finite(obs):
        return "–"
    return f"{obs['value']:.{digits}f} ± {obs['error']:.{digits}f}"


def sigma(a, b):
    if not (finite(a) and finite(b)) or a["error"] ** 2 + b["error"] ** 2 == 0:
        return "–"
    return f"{abs(a['value'] - b['value']) / (a['error'] ** 2 + b['error'] ** 2) ** 0.5:.1f}σ"


def err(e):
    """An ESS error: three decimals, or one significant digit below 0.001."""
    return f"{e:.3f}" if e >= 0.001 else f"{e:.1g}"


def fresh_ess(flow):
    """The ESS of fresh samples, with its jackknife error where the JSON has one."""
    if not flow or flow.get("ess") is None:
        return "–"
    e = flow.get("ess_error")
    return f"{flow['ess']:.3f}" + (f" ± {err(e)}" if e is not None else "")


def rw_ess(flow):
    """The ESS of the chain's independent reweighting samples, with its jackknife error."""
    r = flow and flow.get("reweighted")
    if not r or r.get("ess") is None:
        return "–"
    e = r.get("ess_error")
    return f"{r['ess']:.3f}" + (f" ± {err(e)}" if e is not None else "") + f" ({r['n']})"


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def table(out):
    s = os.path.join(out, "scaling")
    rows = []
    for l in SIZES:
        flow_file = None
        for name in (f"long_L{l}", f"wide_L{l}", f"best_L{l}", f"transfer_L{l}"):
            p = os.path.join(out, name + ".safetensors")
            if os.path.exists(p):
                flow_file = p
                break
        flow = load(os.path.join(s, f"flow_L{l}.json"))
        hmc = load(os.path.join(s, f"hmc_L{l}.json"))
        if flow is None and hmc is None:
            continue
        steps = metadata(flow_file).get("steps_done", "–") if flow_file else "–"
        hours = logged_hours(flow_file) if flow_file else None
        narrow = os.path.join(out, f"best_L{l}.safetensors")
        if flow_file and os.path.basename(flow_file).startswith(("wide_", "long_")) and os.path.exists(narrow):
            # a widened flow: the best flow's steps and hours, then its own (a long_ flow is a
            # copy of the wide one, log included, that counts on from its steps)
            steps = f"{metadata(narrow).get('steps_done', '?')} + {steps}"
            more = logged_hours(narrow)
            hours = hours + more if hours is not None and more is not None else hours
        fs = flow["summary"] if flow else None
        hs = hmc["summary"] if hmc else None
        ref = (flow or hmc)["reference"]
        paper = f"{ref[3]:.0f}% / {ref[4]:.0f}%" if ref and len(ref) >= 5 else "–"
        rows.append(
            "| {l} | {src} | {steps} | {hours} | {ess} | {rw} | {acc} | {n} | {c2f} | {c2h} | {c2s} | {mf} | {mh} | {ms} "
            "| {tf} / {th} | {paper} |".format(
                l=l,
                src=os.path.basename(flow_file) if flow_file else "–",
                steps=steps,
                hours=f"{hours:.1f}" if hours is not None else "–",
                ess=fresh_ess(flow),
                rw=rw_ess(flow),
                acc=f"{flow['acceptance']:.3f}" if flow else "–",
                n=fs["n"] if fs else "–",
                c2f=pm(fs and fs["chi2"], 3 if l <= 12 else 2),
                c2h=pm(hs and hs["chi2"], 3 if l <= 12 else 2),
                c2s=sigma(fs and fs["chi2"], hs and hs["chi2"]),
                mf=pm(fs and fs["l_m_p"], 3),
                mh=pm(hs and hs["l_m_p"], 3),
                ms=sigma(fs and fs["l_m_p"], hs and hs["l_m_p"]),
                tf=f"{fs['tau_int_abs_m']:.2f}" if fs and fs.get("tau_int_abs_m") is not None else "–",
                th=f"{hs['tau_int_abs_m']:.1f}" if hs and hs.get("tau_int_abs_m") is not None else "–",
                paper=paper,
            )
        )
    head = [
        f"# Scaling: L = 6 to 64 ({os.cpu_count()} cores, {cpu_name()})",
        "",
        "Generated by scripts/scaling.sh from the JSON files in "
        f"{s}. Flow: a Metropolis chain of independent flow proposals with Z2 flips "
        "(`eqflow sample --flip`); ESS of 2000 fresh samples (fewer for short chains) and, independently, "
        "of the reweighting samples (their number in brackets; jackknife error); HMC: `eqflow hmc`; errors from the Γ-method "
        "(L·m_p: jackknife over bins); hours: wall time of training logged at this L (not counting the "
        "smaller flows it started from, nor runs without a log).",
        "",
        "| L | flow | steps | training h | ESS | ESS (reweighting) | acceptance | n | χ2 flow | χ2 HMC | Δ | L·m_p flow | L·m_p HMC | Δ "
        "| τ_int \\|M\\| flow / HMC | paper acc / ESS |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    return "\n".join(head + rows) + "\n"


def main(argv):
    if len(argv) == 3 and argv[1] == "--steps":
        print(metadata(argv[2]).get("steps_done", "0"))
        return 0
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    sys.stdout.write(table(argv[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
