"""bench/run --what-if: every patch in bench/what-if applies to this tree and says what it
removes, a what-if is refused where its figures could pass for hookline's, and a what-if run's
report says at its top that its figures are not hookline's."""
import importlib.machinery
import importlib.util
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
    assert "no-lineage" in [p.stem for p in PATCHES]


def test_every_patch_applies_to_this_tree_and_says_what_it_removes():
    for p in PATCHES:
        text = p.read_text()
        # The description comes before the first diff, and is not a diff itself.
        assert not text.startswith("diff --git "), f"{p.name}: no description"
        about, _, diff = text.partition("\ndiff --git ")
        first = about.split("\n\n", 1)[0]
        assert diff and "diff --git" not in first, f"{p.name}: no description before its diff"
        assert len(first.split()) >= 20, f"{p.name}: its first paragraph must say what it removes"
        r = subprocess.run(["git", "apply", "--check", "--whitespace=nowarn", str(p)],
                           capture_output=True, text=True, cwd=SOURCE_DIR)
        assert r.returncode == 0, f"{p.name} no longer applies: {r.stderr}"


def test_a_patch_without_a_description_has_none(tmp_path):
    """bench/run refuses a patch whose description patch_about does not find (before anything
    is built), so a patch missing its words never puts a diff into a report's warning."""
    loader = importlib.machinery.SourceFileLoader("bench_run", str(RUN))
    spec = importlib.util.spec_from_loader("bench_run", loader)
    bench_run = importlib.util.module_from_spec(spec)
    loader.exec_module(bench_run)
    text = (SOURCE_DIR / "bench" / "what-if" / "no-lineage.patch").read_text()
    diff = "diff --git " + text.split("\ndiff --git ", 1)[1]
    for name, body, want in [
            ("whole", text, text.split("\n\n", 1)[0]),
            ("bare", diff, None),
            ("blank-first", "\n\n" + diff, None),
            ("short", "Words.\n" + diff, "Words.")]:
        f = tmp_path / f"{name}.patch"
        f.write_text(body)
        got = bench_run.patch_about(str(f))
        assert got == (" ".join(want.split()) if want else None), (name, got)


def test_refused_where_its_figures_could_pass_for_hooklines(tmp_path):
    cases = [
        (["--what-if", "nope", "--only", "pipeline", "--out", str(tmp_path)],
         "no such bench/what-if patch (known: no-lineage)"),
        (["--what-if", "../what-if/no-lineage", "--only", "pipeline", "--out", str(tmp_path)],
         "no such bench/what-if patch"),
        (["--what-if", "no-lineage", "--out", str(tmp_path)], "add --only pipeline"),
        (["--what-if", "", "--only", "pipeline", "--out", str(tmp_path)],
         "no such bench/what-if patch"),
        (["--what-if", "no-lineage", "--only", "pipeline"], "write them elsewhere with --out"),
        (["--what-if", "no-lineage", "--only", "pipeline", "--out",
          str(SOURCE_DIR / "bench" / "results" / "same-run")], "write them elsewhere with --out"),
        (["--what-if", "no-lineage", "--only", "pipeline", "--out",
          str(SOURCE_DIR / "bench" / "results" / "what-if" / ".." / "x")],
         "write them elsewhere with --out"),
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
                    "patch_blob": "0123456789abcdef0123", "patch_committed": False,
                    "services_commit": "fedcba987654",
                    "about": "What if lineage cost nothing: the test's words."}
    (tmp_path / "latest.json").write_text(json.dumps(j))
    r = bench("--render", "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr
    md = (tmp_path / "latest.md").read_text().split("\n## ", 1)[0]
    assert md.startswith("# hookline benchmark (quick): what-if no-lineage, not hookline's")
    assert ("**A what-if, not hookline's figures.** \"This\" build is commit fedcba987654 with"
            " `bench/what-if/no-lineage.patch` (blob 0123456789ab, not as committed at that"
            " commit) applied: What if lineage cost nothing: the test's words.") in md
    for svg in ("throughput.svg", "latency.svg"):
        assert "(what-if no-lineage, not hookline&#x27;s)" in (tmp_path / svg).read_text()
    assert json.loads((tmp_path / "latest.json").read_text())["what_if"]["name"] == "no-lineage"
    # and a run without one says nothing of it
    shutil.rmtree(tmp_path)
    tmp_path.mkdir()
    del j["what_if"]
    (tmp_path / "latest.json").write_text(json.dumps(j))
    assert bench("--render", "--out", str(tmp_path)).returncode == 0
    assert "what-if" not in (tmp_path / "latest.md").read_text().lower()
