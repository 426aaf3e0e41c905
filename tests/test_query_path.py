"""The query side never loads torch (nor numba): a fresh process loads a model and answers
by title, by id and by unseen text with a schedule context, inspects and explains, runs the
CLI's related / info / inspect and serves HTTP requests, and then torch is not among its
modules. (Training and index building are the only stages that need them.)"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.system

PROBE = r"""
import contextlib, io, json, sys
model_dir, known, unseen = sys.argv[1:4]
from epgembed.query.load import load_model
from epgembed.query.requests import Context, Options
from epgembed.cli.main import main
from epgembed.inspect.explain import explain_pair, inspect_title
from service import ServiceConfig, create_app

m = load_model(model_dir)
answers = {
    "known": [h.title for h in m.related(known, Options(k=3)).related],
    "by_id": [h.id for h in m.related_to_id(0, Options(k=3)).related],
    "unseen": [h.title for h in m.related(unseen, Options(k=3), context=Context(channel="ch1",
                                                                            start="202207212015")).related],
    "inspect": len(inspect_title(m, known, 3)["neighbors"]),
    "explain": explain_pair(m, known, unseen)["score"],
}
with contextlib.redirect_stdout(io.StringIO()):
    codes = [main(["related", model_dir, "--title", unseen, "--json"]), main(["info", model_dir]),
             main(["inspect", model_dir, "--title", known, "-k", "3"])]
client = create_app(ServiceConfig(models=model_dir, poll_seconds=0)).test_client()
http = [client.get(url).status_code for url in
        ("/v1/related?title=" + unseen, "/v1/titles/0/related?k=3", "/v1/explain?title=" + unseen
         + "&neighbor=1")]
print(json.dumps({"torch": "torch" in sys.modules, "numba": "numba" in sys.modules,
                  "answers": answers, "cli": codes, "http": http}))
"""


def test_the_query_path_never_imports_torch(tiny_model_dir: Path):
    r = subprocess.run([sys.executable, "-c", PROBE, str(tiny_model_dir), "Kitchen Heroes",
                        "Puppy Kitchen Tonight"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["cli"] == [0, 0, 0] and out["http"] == [200, 200, 200]
    assert len(out["answers"]["known"]) == 3 and len(out["answers"]["unseen"]) == 3
    assert out["answers"]["inspect"] == 3 and -1.0 <= out["answers"]["explain"] <= 1.0
    assert not out["torch"] and not out["numba"]


def test_the_probe_would_see_torch():
    """The check itself: the same probe after an import of the training code reports torch."""
    code = "import sys, epgembed.build.model.train; print('torch' in sys.modules, 'numba' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.stdout.split() == ["True", "True"], r.stderr
