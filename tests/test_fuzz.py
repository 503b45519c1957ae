"""Inputs nobody wrote by hand: hypothesis-fuzzed scenario files through validate and run.

The fuzzing runs FUZZ_EXAMPLES examples per property (LSTM_BENCH_FUZZ_EXAMPLES=N asks for more).
Without hypothesis (a dev tool: a GPU image offline may lack it) this module skips, with the reason.
"""
import contextlib
import io
import json
import os

import pytest

pytest.importorskip("hypothesis", reason="hypothesis is not installed (pip install -c constraints.txt -e .[dev])")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from harness import cli  # noqa: E402
from harness.config import scenario  # noqa: E402
from harness.run import sweep  # noqa: E402

FUZZ_EXAMPLES = int(os.environ.get("LSTM_BENCH_FUZZ_EXAMPLES", "200"))   # each validated and run: about 4 s
FUZZ = settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))


# -- a tiny TOML writer, for documents hypothesis makes -----------------------------------------------
def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return {float("inf"): "inf", float("-inf"): "-inf"}.get(v, "nan" if v != v else repr(v))
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    return "{" + ", ".join(f"{toml_key(k)} = {toml_value(x)}" for k, x in v.items()) + "}"


def toml_key(k: str) -> str:
    return k if k and all(c.isascii() and (c.isalnum() or c in "_-") for c in k) else json.dumps(k, ensure_ascii=False)


def toml_doc(d: dict) -> str:
    return "".join(f"{toml_key(k)} = {toml_value(v)}\n" for k, v in d.items())


SCHEMA_KEYS = sorted({k for m in scenario.SECTIONS.values() for k in m.model_fields}
                     | set(scenario.Scenario.model_fields) | {"throughputs", "hiden", "seqlen", "imp", "default"})
IMPLS = ["dummy", "fused-lstm", "torch-lstm", "lstm", "", "DUMMY"]
scalars = st.one_of(st.integers(-10, 10), st.integers(min_value=-(10 ** 30), max_value=10 ** 30),
                    st.floats(allow_nan=True, allow_infinity=True), st.booleans(), st.text(max_size=12),
                    st.sampled_from(IMPLS + ["uniform:3-1", "uniform:0-4", "uniform:2-4", "packed", "masked", "train",
                                             "forward", "auto", "cpu", "cuda:7", "float8", "fixed"]))
table_keys = st.sampled_from(SCHEMA_KEYS) | st.text(max_size=6)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(table_keys, inner,
                                                                                            max_size=4), max_leaves=12)
keys = st.one_of(st.sampled_from(SCHEMA_KEYS), st.text(max_size=10))
BASE = {"name": "fuzz", "throughput": [{"impl": "dummy", "hidden": 4, "seq_len": 2, "batch": 1, "phase": "train"}]}


@st.composite
def near_documents(draw) -> str:
    """A valid scenario with one to four things changed: a value, a key added, removed or misspelt."""
    doc = json.loads(json.dumps(BASE))
    section = doc["throughput"][0]
    for _ in range(draw(st.integers(1, 4))):
        where = draw(st.sampled_from([doc, section]))
        action = draw(st.sampled_from(["set", "add", "drop", "typo"])) if where else "add"
        key = draw(st.sampled_from(sorted(where))) if where else ""
        if action == "set":
            where[key] = draw(values)
        elif action == "add":
            where[draw(keys)] = draw(values)
        elif action == "drop":
            where.pop(key)
        elif key in where:
            pos = draw(st.integers(0, max(0, len(key) - 1)))
            where[key[:pos] + key[pos + 1:] + draw(st.text(max_size=1))] = where.pop(key)
    return toml_doc(doc)


documents = st.one_of(near_documents(), st.dictionaries(keys, values, max_size=5).map(toml_doc),
                      st.text(max_size=200), st.binary(max_size=200))


class Started(Exception):
    """run_sweep was reached: the input was accepted (the fuzzed runs are not run)."""


def answer(argv: list[str]) -> tuple[int, list[str]]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = cli.main(argv)
        except Started:
            code = 0
    return code, err.getvalue().splitlines()


@FUZZ
@given(doc=documents)
def test_fuzzed_scenarios_get_exit_0_or_one_line_and_exit_2(doc, tmp_path_factory, monkeypatch):
    tmp = tmp_path_factory.mktemp("fuzz")
    path = tmp / "s.toml"
    path.write_bytes(doc if isinstance(doc, bytes) else doc.encode("utf-8", "surrogatepass"))
    monkeypatch.setattr(sweep, "run_sweep", lambda *a, **k: (_ for _ in ()).throw(Started()))
    for argv in (["validate", str(path)], ["run", str(path), "--results", str(tmp / "results")]):
        code, err = answer(argv)
        assert code in (0, 2), (argv, err)
        if code == 2:
            assert len(err) == 1 and err[0].startswith(f"error: {path}") and "Traceback" not in err[0], err
        assert not any((tmp / "results").glob("*/run.json"))         # nothing is written before a run starts


