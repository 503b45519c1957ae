"""scripts/mutation-score.py's arithmetic: the sample it draws and the score it estimates from it."""
import importlib.util
import json
from collections import Counter
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "mutation-score.py"
spec = importlib.util.spec_from_file_location("mutation_score", SCRIPT)
ms = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ms)


def test_the_estimate_counts_the_run_mutants_as_they_are_and_the_rest_at_the_samples_rate():
    """90 killed and 10 survived in all, 8 and 2 of them in a sample of the 110 that had not run: the 90 run
    before it score 82 of 90, the other 110 count at 8/10 (Clopper-Pearson 95%: 0.4439 to 0.9748)."""
    est = ms.estimate(Counter({"killed": 90, "survived": 10, "not run": 100}), Counter({"killed": 8, "survived": 2}))
    assert est[0] == pytest.approx((82 + 110 * 0.8) / 200)
    assert est[1:] == (pytest.approx((82 + 110 * 0.44390) / 200, abs=1e-5),
                       pytest.approx((82 + 110 * 0.97479) / 200, abs=1e-5), 10)
    assert ms.estimate(Counter({"killed": 5, "survived": 1}), Counter({"killed": 5, "survived": 1})) is None
    assert ms.estimate(Counter({"killed": 5, "not run": 3}), Counter()) is None


def test_a_draw_takes_up_to_n_not_run_mutants_of_each_module_and_is_seeded():
    res = {f"harness.a.x_f__mutmut_{i}": None for i in range(10)} | {"harness.a.x_f__mutmut_10": 1,
                                                                      "harness.b.x_g__mutmut_1": None}
    drawn = ms.draw(res, 3)
    assert len(drawn) == 4 and "harness.b.x_g__mutmut_1" in drawn and "harness.a.x_f__mutmut_10" not in drawn
    assert drawn == ms.draw(res, 3) and drawn == sorted(drawn)
    assert [ms.outcome(c) for c in (None, 1, 0, 36, 33)] == ["not run", "killed", "survived", "timeout", "survived"]


def test_sample_draws_for_the_modules_named_and_fresh_restarts_only_theirs(tmp_path, monkeypatch, capsys):
    res = {f"harness.{m}.x_f__mutmut_{i}": None for m in ("a", "b") for i in range(6)}
    monkeypatch.setattr(ms, "results", lambda root: res)
    monkeypatch.setattr(ms, "SAMPLE_FILE", tmp_path / "m" / "sample.json")
    assert ms.main(["--sample", "2"]) == 0
    first = capsys.readouterr().out.split()
    assert sorted({n.split(".")[1] for n in first}) == ["a", "b"] and len(first) == 4
    for n in first:
        res[n] = 1                                                   # the sample ran: killed
    assert ms.main(["--sample", "2", "a", "--fresh"]) == 0
    second = capsys.readouterr().out.split()
    assert len(second) == 2 and {n.split(".")[1] for n in second} == {"a"} and not set(second) & set(first)
    kept = set(json.loads(ms.SAMPLE_FILE.read_text())["names"])
    assert kept == {n for n in first if ".b." in n} | set(second)    # a's first sample is now known, not sampled
    for n in res:
        res[n] = 1
    assert ms.main(["--sample", "2"]) == 0 and capsys.readouterr().out.split() == ["harness.none"]


@pytest.mark.source
def test_every_pattern_of_the_scope_names_a_module_and_function_that_exist():
    """A module moved (into a package) or a function renamed would leave its patterns matching no mutant."""
    import ast

    repo = SCRIPT.parent.parent
    assert ms.module_of("harness.analysis.claims.x_claim_a__mutmut_3") == "claims"
    for pattern in ms.SCOPE:
        module, _, function = pattern.rpartition(".")
        path = repo / (module.replace(".", "/") + ".py")
        assert path.is_file(), pattern
        if function != "*":
            name = function.removeprefix("x_").removesuffix("__mutmut_*")
            defined = {n.name for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.FunctionDef)}
            assert name in defined, pattern
