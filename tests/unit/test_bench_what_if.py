"""bench/run --what-if: every patch in bench/what-if applies to this tree and says what it
removes, a what-if is refused where its figures could pass for hookline's, and a what-if run's
report says at its top that its figures are not hookline's."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

SOURCE_DIR = Path(os.environ.get("HL_SOURCE_DIR") or Path(__file__).resolve().parents[2])
RUN = SOURCE_DIR / "bench" / "run"
PATCHES = sorted((SOURCE_DIR / "bench" / "what-if").glob("*.patch"))


def bench(*args):
    return subprocess.run([sys.executable, str(RUN), *args], capture_output=True, text=True,
                          timeout=60, cwd=SOURCE_DIR)


def test_there_are_patches():
    assert [p.stem for p in PATCHES] == ["no-lineage"]


def test_every_patch_applies_to_this_tree_and_says_what_it_removes():
    for p in PATCHES:
        about, _, diff = p.read_text().partition("\ndiff --git ")
        assert diff, f"{p.name}: no diff"
        first = about.split("\n\n", 1)[0]
        assert len(first.split()) >= 20, f"{p.name}: its first paragraph must say what it removes"
        r = subprocess.run(["git", "apply", "--check", "--whitespace=nowarn", str(p)],
                           capture_output=True, text=True, cwd=SOURCE_DIR)
        assert r.returncode == 0, f"{p.name} no longer applies: {r.stderr}"


def test_refused_where_its_figures_could_pass_for_hooklines(tmp_path):
    cases = [
        (["--what-if", "nope", "--only", "pipeline", "--out", str(tmp_path)],
         "no such bench/what-if patch (known: no-lineage)"),
        (["--what-if", "../what-if/no-lineage", "--only", "pipeline", "--out", str(tmp_path)],
         "no such bench/what-if patch"),
        (["--what-if", "no-lineage", "--out", str(tmp_path)], "add --only pipeline"),
        (["--what-if", "no-lineage", "--only", "pipeline"], "write them elsewhere with --out"),
        (["--what-if", "no-lineage", "--only", "pipeline", "--out", str(tmp_path), "--render"],
         "not --render"),
    ]
    for args, why in cases:
        r = bench(*args)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert why in r.stderr, (args, r.stderr)
    assert not any(tmp_path.iterdir())  # nothing measured, nothing written


def test_a_what_if_run_says_so_at_the_top_of_its_report(tmp_path):
    j = json.loads((SOURCE_DIR / "bench" / "results" / "latest.json").read_text())
    j["what_if"] = {"name": "no-lineage", "patch": "bench/what-if/no-lineage.patch",
                    "about": "What if lineage cost nothing: the test's words."}
    (tmp_path / "latest.json").write_text(json.dumps(j))
    r = bench("--render", "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr
    md = (tmp_path / "latest.md").read_text().split("\n## ", 1)[0]
    assert ("**A what-if, not hookline's figures.** \"This\" build is commit "
            f"{j['commit']} with `bench/what-if/no-lineage.patch` applied: What if lineage cost "
            "nothing: the test's words.") in md
    assert json.loads((tmp_path / "latest.json").read_text())["what_if"]["name"] == "no-lineage"
    # and a run without one says nothing of it
    shutil.rmtree(tmp_path)
    tmp_path.mkdir()
    del j["what_if"]
    (tmp_path / "latest.json").write_text(json.dumps(j))
    assert bench("--render", "--out", str(tmp_path)).returncode == 0
    assert "what-if" not in (tmp_path / "latest.md").read_text().lower()
