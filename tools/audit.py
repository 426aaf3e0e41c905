"""`make audit`: known vulnerabilities and pin drift of the project's Python dependencies.

    .venv/bin/python tools/audit.py [--require-db] [--out bench/results/audit.json]

1. pins: every `name==version` of requirements.txt, -eval.txt and -dev.txt is installed
   in this environment at exactly that version (a local tag such as torch's +cpu allowed).
2. `pip check`: the installed packages' own requirements are all met.
3. pip-audit over everything installed here (the pins and all their dependencies; the
   editable epgembed itself skipped) against PyPI's vulnerability data (OSV). On a machine
   that cannot reach that data, pip-audit reports every package as "could not be audited":
   this script then says plainly that NO vulnerability check was done (exit 0, or exit 1
   with --require-db) instead of passing it off as clean.

Exit 1 on a pin mismatch, a `pip check` failure or a known vulnerability. Writes the
outcome (command, versions, what was and was not checked) to --out.
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
REQUIREMENTS = ("requirements.txt", "requirements-eval.txt", "requirements-dev.txt")
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*([^\s;#]+)")


def pins() -> dict[str, tuple[str, str]]:
    """canonical name -> (version, file) for every `name==version` line."""
    out: dict[str, tuple[str, str]] = {}
    for name in REQUIREMENTS:
        for line in (REPO / name).read_text().splitlines():
            line = line.strip()
            if not line or line.startswith(("#", "-")):
                continue
            m = PIN.match(line)
            if not m:
                raise SystemExit(f"{name}: not pinned with ==: {line!r}")
            out[canonicalize_name(m.group(1))] = (m.group(2), name)
    return out


def check_pins() -> list[str]:
    problems = []
    for name, (version, source) in sorted(pins().items()):
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            problems.append(f"{name}=={version} ({source}) is not installed")
            continue
        if not SpecifierSet(f"=={version}").contains(installed, prereleases=True):
            problems.append(f"{name}: {source} pins {version}, installed {installed}")
    return problems


def pip_check() -> tuple[bool, str]:
    r = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True, text=True)
    return r.returncode == 0, (r.stdout + r.stderr).strip()


def pip_audit(timeout: int) -> dict:
    exe = Path(sys.executable).with_name("pip-audit")
    cmd = [str(exe), "--local", "--skip-editable", "--format", "json", "--progress-spinner", "off",
           "--timeout", str(timeout)]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as e:
        return {"ran": False, "error": repr(e)}
    try:
        report = json.loads(r.stdout)
    except json.JSONDecodeError:
        return {"ran": False, "error": (r.stderr or r.stdout).strip()[-800:]}
    deps = report.get("dependencies", [])
    audited = [d for d in deps if "skip_reason" not in d]
    vulns = [{"name": d["name"], "version": d["version"], "id": v["id"], "fix_versions": v.get("fix_versions")}
             for d in audited for v in d.get("vulns", [])]
    return {"ran": True, "packages": len(deps), "audited": len(audited),
            "skipped": len(deps) - len(audited), "vulnerabilities": vulns,
            "skip_reasons": sorted({d["skip_reason"].split(":")[0] for d in deps if "skip_reason" in d})}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--require-db", action="store_true", help="fail when no vulnerability data could be reached")
    ap.add_argument("--timeout", type=int, default=15, help="pip-audit's socket timeout (s)")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "audit.json")
    args = ap.parse_args(argv)

    pin_problems = check_pins()
    check_ok, check_text = pip_check()
    audit = pip_audit(args.timeout)
    db_reached = audit.get("ran") and audit.get("audited", 0) > 0
    vulns = audit.get("vulnerabilities", [])

    print(f"pins: {len(pins())} pinned in {', '.join(REQUIREMENTS)}: "
          + ("all installed at the pinned version" if not pin_problems else f"{len(pin_problems)} MISMATCH"))
    for p in pin_problems:
        print(f"  {p}")
    print(f"pip check: {'ok' if check_ok else 'FAILED'} ({check_text.splitlines()[0] if check_text else ''})")
    if db_reached:
        print(f"pip-audit: {audit['audited']} of {audit['packages']} installed packages checked against PyPI/OSV: "
              + (f"{len(vulns)} KNOWN VULNERABILITIES" if vulns else "no known vulnerabilities"))
        for v in vulns:
            print(f"  {v['name']} {v['version']}: {v['id']} (fixed in {', '.join(v['fix_versions'] or []) or '?'})")
    else:
        why = audit.get("error") or "; ".join(audit.get("skip_reasons", [])) or "no package could be audited"
        print("pip-audit: NOT CHECKED for known vulnerabilities: the vulnerability data (PyPI's JSON API / OSV) "
              f"could not be reached from this machine ({why[:200]}). Checked offline instead: the pins "
              "and `pip check` above.")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "command": "make audit  (" + " ".join([Path(sys.executable).name, "tools/audit.py", *(argv or sys.argv[1:])]) + ")",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "python": sys.version.split()[0],
        "pip_audit": metadata.version("pip-audit"), "pins": len(pins()), "pin_problems": pin_problems,
        "pip_check_ok": check_ok, "vulnerability_db_reached": bool(db_reached), "audit": audit,
    }, indent=1) + "\n")
    failed = bool(pin_problems) or not check_ok or bool(vulns) or (args.require_db and not db_reached)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
