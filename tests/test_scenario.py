"""Scenario files: parsing, grid expansion (literal case counts), and one-line errors."""
import textwrap

import pytest

from harness import cli
from harness.config import scenario
from harness.config.cases import ThroughputCase, case_id
from harness.core.errors import UsageError
from harness.implementations import registry

GRID = """
name = "t"
description = "a test grid"
[defaults]
dtype = "float64"
threads = 1
seed = 3
[[throughput]]
impl = ["fused-lstm", "torch-lstm"]
hidden = [8, 16]
seq_len = 5
batch = [1, 2, 4]
phase = ["forward", "train"]
[[throughput]]
impl = "scratch-rnn"
device = "cpu"
dtype = "float32"
hidden = 8
input = [3, 8]
seq_len = [2, 3]
batch = 1
phase = "train"
rounds = 4
"""


def write(tmp_path, text, name="s.toml"):
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


def test_grid_is_the_cartesian_product(tmp_path):
    cases = scenario.expand(scenario.load(write(tmp_path, GRID)))
    assert len(cases) == 2 * 2 * 1 * 3 * 2 + 1 * 2 * 2 * 1 * 1 == 28
    first = cases[0]
    assert first == ThroughputCase(impl="fused-lstm", device="cpu", dtype="float64", batch=1, seq_len=5,
                                            hidden=8, input=8, phase="forward", seed=3, threads=1, rounds=10,
                                            warmup=2, memory=True)
    assert {c.input for c in cases[:24]} == {8, 16} and all(c.input == c.hidden for c in cases[:24])
    rnn = cases[24:]
    assert [(c.input, c.seq_len) for c in rnn] == [(3, 2), (3, 3), (8, 2), (8, 3)]
    assert {(c.dtype, c.rounds, c.threads, c.phase) for c in rnn} == {("float32", 4, 1, "train")}
    assert len(set(cases)) == 28 and hash(first) == hash(cases[0])  # frozen, hashable values


def test_slug_is_readable():
    c = ThroughputCase(impl="fused-lstm", device="cuda:1", dtype="float32", hidden=256, input=256, seq_len=100,
                                batch=32, phase="train", seed=0, threads=2, rounds=10, warmup=2, memory=True)
    assert c.slug == "fused-lstm_cuda1_b32_t100_h256_train"


@pytest.mark.parametrize("name,count", [("smoke", 13), ("quick", 414), ("full", 4640), ("fastrnns", 172),
                                        ("deepbench", 88), ("goals", 32), ("stacks", 80), ("compilers", 56),
                                        ("parallel", 179), ("classics", 77)])
def test_every_shipped_scenario_validates(name, count):
    sc = scenario.load(name)
    assert sc.name == name and len(scenario.expand(sc)) == count


def test_shipped_list():
    assert [p.stem for p in scenario.shipped()] == ["classics", "compilers", "deepbench-short", "deepbench",
                                                    "fastrnns", "full", "goals", "parallel", "quick", "smoke",
                                                    "stacks"]


@pytest.mark.parametrize("old,new,message", [
    ("hidden = [8, 16]", "hiden = [8, 16]",
     "s.toml: [[throughput]] #1, key 'hiden': unknown key; did you mean 'hidden'? allowed: impl, hidden, input"),
    ('impl = ["fused-lstm", "torch-lstm"]', 'impl = ["fused-lstm", "lstm"]',
     "s.toml: [[throughput]] #1, key 'impl': unknown implementation 'lstm'; allowed: scratch-lstm, fused-lstm"),
    ("hidden = [8, 16]", "hidden = [8, 0]",
     "s.toml: [[throughput]] #1, key 'hidden': sizes must be positive integers, not 0"),
    ("hidden = [8, 16]", 'hidden = "big"', "s.toml: [[throughput]] #1, key 'hidden': Input should be a valid integer"),
    ('phase = ["forward", "train"]', 'phase = ["forward", "backward"]',
     "s.toml: [[throughput]] #1, key 'phase': Input should be 'forward' or 'train', not 'backward'"),
    ("rounds = 4", "rounds = 0", "s.toml: [[throughput]] #2, key 'rounds': Input should be greater than 0"),
    ('impl = ["fused-lstm", "torch-lstm"]', "impl = []", "s.toml: [[throughput]] #1: empty grid"),
    ("seq_len = 5", "", "s.toml: [[throughput]] #1, key 'seq_len': missing (required)"),
])
def test_bad_section_gets_one_line(tmp_path, old, new, message):
    with pytest.raises(UsageError) as err:
        scenario.load(write(tmp_path, GRID.replace(old, new, 1)))
    assert message in str(err.value) and "\n" not in str(err.value)


def test_bad_defaults_and_top_level(tmp_path):
    with pytest.raises(UsageError, match=r"\[defaults\], key 'dtype': unknown dtype 'float8'; allowed: float32"):
        scenario.load(write(tmp_path, GRID.replace('dtype = "float64"', 'dtype = "float8"')))
    with pytest.raises(UsageError, match=r"top level, key 'throughputs': unknown key or section; did you mean "
                                         r"'throughput'\?"):
        scenario.load(write(tmp_path, GRID.replace("[[throughput]]", "[[throughputs]]", 1)))
    with pytest.raises(UsageError, match=r"\[defaults\], key 'device': unknown device 'tpu'"):
        scenario.load(write(tmp_path, GRID.replace('threads = 1', 'threads = 1\ndevice = "tpu"')))


def test_toml_syntax_error_has_line_and_column(tmp_path):
    with pytest.raises(UsageError, match=r"s.toml: TOML syntax error: .*line 3, column"):
        scenario.load(write(tmp_path, 'name = "x"\n[defaults]\ndtype = \n'))


def test_duplicate_cases_are_an_error(tmp_path):
    text = GRID + '[[throughput]]\nimpl = "torch-lstm"\nhidden = 8\nseq_len = 5\nbatch = 2\nphase = "train"\n'
    with pytest.raises(UsageError, match=r"\[\[throughput\]\] #3: duplicate case torch-lstm_cpu_b2_t5_h8_float64_train"
                                         r" \(already in \[\[throughput\]\] #1\)"):
        scenario.load(write(tmp_path, text))


def test_unknown_scenario_names_the_shipped_ones():
    shipped = "classics, compilers, deepbench-short, deepbench, fastrnns, full, goals, parallel, quick, smoke, stacks"
    with pytest.raises(UsageError, match=f"unknown scenario 'quik'; shipped: {shipped}"):
        scenario.load("quik")
    with pytest.raises(UsageError, match="nope.toml: no such scenario file"):
        scenario.load("nope.toml")


def test_validate_command_exit_codes(tmp_path, capsys):
    good = write(tmp_path, GRID, "good.toml")
    bad = write(tmp_path, GRID.replace("seq_len = 5", "seq_len = -5"), "bad.toml")
    assert cli.main(["validate", str(good)]) == 0
    assert "good.toml (28 cases)" in capsys.readouterr().out
    assert cli.main(["validate", str(good), str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bad.toml: [[throughput]] #1, key 'seq_len'" in err[0]


@pytest.mark.parametrize("name", ["smoke", "quick", "full", "fastrnns", "deepbench", "goals"])
def test_run_json_copy_gives_back_the_same_cases(name):
    """--resume rebuilds the scenario from run.json; it must expand to the very same cases and ids."""
    sc = scenario.load(name)
    again = scenario.from_resolved(scenario.resolved(sc))
    assert [case_id(c) for c in scenario.expand(again)] == [case_id(c) for c in scenario.expand(sc)]


def test_validate_with_no_files_checks_every_shipped_scenario(capsys):
    assert cli.main(["validate"]) == 0
    out = capsys.readouterr().out.splitlines()
    counts = {"classics": 77, "compilers": 56, "deepbench-short": 16, "deepbench": 88, "fastrnns": 172, "full": 4640,
              "goals": 32, "parallel": 179, "quick": 414, "smoke": 13, "stacks": 80}
    assert out == [f"ok: {scenario.resolve(n)} ({c} cases)" for n, c in counts.items()]


def test_ls_lists_implementations_and_scenarios(capsys):
    assert cli.main(["ls"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == (f"implementations (devices available here: {', '.join(registry.available_devices())}; gemm: the "
                      "libraries of its GEMMs)")
    assert [line.split()[0] for line in out[1:19]] == ["scratch-lstm", "fused-lstm", "bptt-lstm", "torch-lstm",
                                                       "onednn-lstm", "cudnn-lstm", "scratch-rnn", "torch-rnn",
                                                       "torch-gru", "compiled-lstm", "compiled-loop-lstm",
                                                       "scripted-lstm", "cudagraph-lstm", "mingru-scan",
                                                       "mingru-loop", "minlstm-scan", "minlstm-loop", "dummy"]
    assert out[19] == "scenarios"
    assert [line.split()[:3] for line in out[20:]] == [[n, str(c), "cases"] for n, c in (
        ("classics", 77), ("compilers", 56), ("deepbench-short", 16), ("deepbench", 88), ("fastrnns", 172),
        ("full", 4640), ("goals", 32), ("parallel", 179), ("quick", 414), ("smoke", 13), ("stacks", 80))]


# -- stacks and variable lengths ------------------------------------------------------------------
@pytest.mark.parametrize("key,message", [
    ("proj_size = 8", "s.toml: [[throughput]] #1, key 'proj_size': must be < hidden (0: none), not 8 with hidden 8"),
    ("proj_size = -1", "s.toml: [[throughput]] #1, key 'proj_size': must be an integer >= 0 and < hidden (0: none), "
     "not -1"),
    ("layers = 0", "s.toml: [[throughput]] #1, key 'layers': must be an integer >= 1, not 0"),
    ("dropout = 1.0", "s.toml: [[throughput]] #1, key 'dropout': must be in [0, 1), not 1.0"),
    ("dropout = -0.1", "s.toml: [[throughput]] #1, key 'dropout': must be in [0, 1), not -0.1"),
    ('lengths = "uniform:9-3"', "s.toml: [[throughput]] #1, key 'lengths': lengths 'uniform:9-3': LO must be <= HI, "
     "not 9 > 3"),
    ('lengths = "uniform:0-3"', "s.toml: [[throughput]] #1, key 'lengths': lengths 'uniform:0-3': LO must be >= 1 "
     "(every sequence has a step), not 0"),
    ('lengths = "normal:5"', "s.toml: [[throughput]] #1, key 'lengths': unknown lengths 'normal:5'; allowed: 'fixed' "
     "or 'uniform:LO-HI' (integers, 1 <= LO <= HI)"),
    ('lengths_mode = "sorted"', "s.toml: [[throughput]] #1, key 'lengths_mode': Input should be 'packed', 'masked' "
     "or 'padded', not 'sorted'"),
    ("bidirectional = 1", "s.toml: [[throughput]] #1, key 'bidirectional': Input should be a valid boolean "
     "(true or false), not 1"),
])
def test_bad_stack_keys_get_one_line(tmp_path, key, message):
    text = GRID.replace("hidden = [8, 16]", "hidden = 8\n" + key, 1)
    with pytest.raises(UsageError) as err:
        scenario.load(write(tmp_path, text))
    assert str(err.value) == f"{tmp_path}/{message}"


def test_proj_size_on_a_non_lstm_is_one_line(tmp_path):
    text = GRID.replace('impl = ["fused-lstm", "torch-lstm"]', 'impl = ["fused-lstm", "torch-rnn"]\nproj_size = 4', 1)
    with pytest.raises(UsageError) as err:
        scenario.load(write(tmp_path, text))
    assert str(err.value) == (f"{tmp_path / 's.toml'}: [[throughput]] #1, key 'proj_size': applies to LSTM "
                              "implementations only, not torch-rnn (put it in a section of its own)")


def test_stack_axes_expand_and_collapse(tmp_path):
    """lengths_mode only with variable lengths, seq_len HI for them, dropout only with layers > 1 in training."""
    text = """
    name = "t"
    [[throughput]]
    impl = "fused-lstm"
    hidden = 8
    seq_len = 5
    batch = 2
    phase = ["forward", "train"]
    layers = [1, 2]
    bidirectional = [false, true]
    dropout = [0.0, 0.5]
    lengths = ["fixed", "uniform:2-9"]
    lengths_mode = ["packed", "masked", "padded"]
    """
    cases = scenario.expand(scenario.load(write(tmp_path, text)))
    # 2 phases x 2 layers x 2 directions x (fixed + 3 modes); dropout adds a copy of the 2-layer train ones
    assert len(cases) == 2 * (2 * 2 * 4) + 2 * 4 == 40
    assert {(c.lengths, c.lengths_mode, c.seq_len) for c in cases} == {
        ("fixed", None, 5), ("uniform:2-9", "packed", 9), ("uniform:2-9", "masked", 9), ("uniform:2-9", "padded", 9)}
    assert {(c.phase, c.layers) for c in cases if c.dropout} == {("train", 2)}
    assert cases[-1].slug == "fused-lstm_cpu_b2_t9_h8_l2_bi_d0.5_u2-9-padded_train"


def test_on_device_keeps_only_that_devices_cases_and_names_the_run():
    quick = scenario.load("quick")
    cuda = scenario.on_device(quick, "cuda")
    assert cuda.name == "quick-cuda"
    cases = scenario.expand(cuda)
    assert len(cases) == 174 and {c.device for c in cases} == {"cuda"}
    assert len(cases) + len(scenario.expand(scenario.on_device(quick, "cpu"))) == len(scenario.expand(quick))
    with pytest.raises(UsageError, match="no case of scenario deepbench-short runs on cuda:1 "):
        scenario.on_device(scenario.load("deepbench-short"), "cuda:1")       # a device is matched exactly
    one = quick.model_copy(update={"throughput": [quick.throughput[0].model_copy(update={"device": ["cuda:1"]})]})
    assert scenario.on_device(one, "cuda:1").name == "quick-cuda1"          # the run's name has no colon


@pytest.mark.parametrize(("argv", "line"), [
    (["run", "smoke", "--device", "cuda"], "scenarios/smoke.toml: no case of scenario smoke runs on cuda "
                                           "(--device keeps only those)"),
    (["run", "smoke", "--device", "tpu"], "run --device: unknown device 'tpu'; allowed: cpu, cuda (or cuda:N)"),
    (["run", "--resume", "latest", "--device", "cuda"], "run: --resume continues the run's own cases; --device is "
                                                        "for a new run")])
def test_device_mistakes_are_one_line(tmp_path, capsys, argv, line):
    assert cli.main(argv + ["--results", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.endswith(line + "\n") and len(err.splitlines()) == 1
    assert not list(tmp_path.iterdir())


SETTINGS_KEYS = "device, dtype, threads, seed, rounds, warmup, interleave, max_time_s"


@pytest.mark.parametrize("old,new,message", [
    ("threads = 1", "thread = 1",        # [defaults] allows the settings only, and suggests the closest one
     f"s.toml: [defaults], key 'thread': unknown key; did you mean 'threads'? allowed: {SETTINGS_KEYS}"),
    ("threads = 1", "zzz = 1", f"s.toml: [defaults], key 'zzz': unknown key allowed: {SETTINGS_KEYS}"),
    ('name = "t"', "name = 5", "s.toml: top level, key 'name': Input should be a valid string"),
    ("[[throughput]]\nimpl = \"scratch-rnn\"", "[[gradients]]\nimpl = \"scratch-rnn\"",
     "s.toml: [[gradients]] #1, key 'phase': unknown key allowed: impl, hidden, input, seq_len, batch, init, "
     f"forget_bias, nonlinearity, seeds, layers, spectral_radius, autocast, {SETTINGS_KEYS}"),
    ('name = "t"', 'name = "t"\ntask = [5]',           # an entry that is not a table: the section, no key
     "s.toml: [[task]] #1: Input should be a valid dictionary or instance of Task"),
    ("[[throughput]]", "[[throughputs]]",
     "s.toml: top level, key 'throughputs': unknown key or section; did you mean 'throughput'? allowed: name, "
     "description, defaults, throughput, gradients, task"),
])
def test_bad_keys_and_values_name_their_place_literally(tmp_path, old, new, message):
    with pytest.raises(UsageError) as err:
        scenario.load(write(tmp_path, GRID.replace(old, new, 1)))
    assert str(err.value).removeprefix(f"{tmp_path}/") == message


def test_a_grid_too_large_says_how_long_it_would_take():
    err = scenario.TooLarge("big.toml", 1_000_800)       # 1,000,800 x 0.27 s = 75.06 h
    assert err.size == 1_000_800
    assert str(err) == ("big.toml: 1,000,800 cases, more than 100,000: at least 75.1 h at 0.27 s a case; run it "
                        "with --yes to start it anyway, or make the grid smaller")


def test_profiled_keeps_only_the_throughput_sections_with_profile_on(tmp_path):
    text = GRID + ('[[gradients]]\nimpl = "scratch-rnn"\nhidden = 8\nseq_len = 5\nbatch = 1\n'
                   '[[task]]\ntask = "adding"\nimpl = "scratch-rnn"\nhidden = 8\nseq_len = 5\nbatch = 1\nsteps = 2\n')
    sc = scenario.load(write(tmp_path, text))
    assert (len(sc.throughput), len(sc.gradients), len(sc.task)) == (2, 1, 1)
    p = scenario.profiled(sc)
    assert (len(p.throughput), p.gradients, p.task) == (2, [], [])
    assert [t.profile for t in p.throughput] == [True, True] and [t.profile for t in sc.throughput] == [False, False]


def test_a_scenario_of_one_kind_of_section_loads_and_one_of_none_is_refused(tmp_path):
    grads = 'name = "g"\n[[gradients]]\nimpl = "scratch-rnn"\nhidden = 8\nseq_len = 5\nbatch = 1\n'
    task = ('name = "k"\n[[task]]\ntask = "adding"\nimpl = "scratch-rnn"\nhidden = 8\nseq_len = 5\nbatch = 1\n'
            'steps = 2\n')
    assert [len(scenario.expand(scenario.load(write(tmp_path, t)))) for t in (grads, task)] == [1, 1]
    with pytest.raises(UsageError) as err:
        scenario.load(write(tmp_path, 'name = "none"\n'))
    assert str(err.value) == (f"{tmp_path / 's.toml'}: no sections: add at least one of [[throughput]], "
                              "[[gradients]], [[task]]")
