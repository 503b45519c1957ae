"""The parallel-scan report: speed-ups with intervals, crossovers, equal parameters, memory, claim (g)'s rule."""
import numpy as np
import pandas as pd

from harness.analysis import claims, parallel

CPU = "cpu: Test @ host"
GPU = "cuda: Test GPU @ host"


def timings(label=CPU, per_token=None, hidden=256, params=None, group="g"):
    """ok train rows at T = 64, 256, 1024: time = T * per_token[impl] seconds, 5 identical rounds each."""
    per_token = per_token or {"mingru-scan": 1.0, "mingru-loop": 1.0, "torch-gru": 1.0}
    rows, rounds = [], []
    for T, scale in ((64, 1.0), (256, 1.0), (1024, 1.0)):
        for impl, k in per_token.items():
            k = k(T) if callable(k) else k
            cid = f"{label}-{impl}-{hidden}-{T}"
            rows.append({"run_id": "r", "case_id": cid, "group_id": f"{group}{T}", "impl": impl, "status": "ok",
                         "device_label": label, "dtype": "float32", "phase": "train", "batch": 16, "seq_len": T,
                         "input": 256, "layers": 1, "autocast": "none", "stack": "", "hidden": hidden,
                         "params": (params or {}).get(impl, 1000), "time_median_s": T * k * scale,
                         "peak_mem_bytes": {"mingru-scan": 3, "mingru-loop": 1}.get(impl, 2) * T * 2**20})
            rounds += [{"run_id": "r", "case_id": cid, "round": r, "time_s": T * k * (1 + 0.01 * r)} for r in range(5)]
    return pd.DataFrame(rows), pd.DataFrame(rounds)


def test_crossover_lies_between_the_last_T_not_faster_and_the_first_faster_for_good():
    # the loop costs 1 per token; the scan 2 at T = 64, 0.5 from 256 on: it crosses between 64 and 256
    t, r = timings(per_token={"mingru-scan": lambda T: 2.0 if T == 64 else 0.5, "mingru-loop": 1.0})
    sp = parallel.speedups(t, r)
    assert list(sp["speedup"]) == [0.5, 2.0, 2.0]
    [row] = parallel.crossovers(sp).to_dict("records")
    assert (row["from_T"], row["below_T"], row["verdicts"]) == (256, 64, ["slower", "faster", "faster"])
    assert parallel.crossover_text(row) == ("mingru-scan beats mingru-loop from T = 256 on (crossover between 64 and "
                                            "256; T=64 0.5x; T=256 2x; T=1024 2x)")


def test_no_crossover_and_a_win_at_every_T_are_said_so():
    t, r = timings(per_token={"mingru-scan": 1.5, "mingru-loop": 1.0, "torch-gru": 0.5})
    cx = {row["slow"]: row for row in parallel.crossovers(parallel.speedups(t, r)).to_dict("records")}
    assert parallel.crossover_text(cx["mingru-loop"]) == (
        "mingru-scan beats mingru-loop at no T up to 1024 (T=64 0.667x; T=256 0.667x; T=1024 0.667x): at T = 1024 "
        "it is slower")
    t, r = timings(per_token={"mingru-scan": 0.25, "torch-gru": 1.0})
    [row] = parallel.crossovers(parallel.speedups(t, r)).to_dict("records")
    assert parallel.crossover_text(row) == "mingru-scan beats torch-gru at every T run, from 64 (T=64 4x; T=256 4x; " \
                                           "T=1024 4x)"


def test_equal_parameters_pairs_other_hidden_sizes_within_one_percent_unpaired():
    a, ra = timings(per_token={"minlstm-scan": 2.0}, hidden=683, params={"minlstm-scan": 526_593}, group="p")
    b, rb = timings(per_token={"onednn-lstm": 1.0, "minlstm-scan": 0.5}, params={"onednn-lstm": 526_336,
                                                                                   "minlstm-scan": 197_376})
    sp = parallel.speedups(pd.concat([a, b]), pd.concat([ra, rb]))
    eq = sp[sp["basis"] == "equal parameters"]
    assert list(eq["hidden"]) == [683] * 3 and list(eq["hidden_slow"]) == [256] * 3
    assert list(eq["speedup"]) == [0.5] * 3                         # the h683 scan takes twice the LSTM's time
    assert list(sp[sp["basis"] == "equal hidden"]["speedup"]) == [2.0] * 3
    assert np.isfinite(eq["lo"]).all()


def test_memory_sentence_sets_the_scan_beside_its_loop_and_the_paper():
    t, _ = timings()
    [line] = parallel.memory_sentence(parallel.memory_rows(t))
    assert line == ("Peak memory of a train step at T = 1024, h256 on cpu (Test): mingru-scan 3.00 GiB against "
                    "mingru-loop's 1.00 GiB (200% more) (Feng et al. report about 88% more for the parallel mode, on "
                    "a T4 GPU).")


def test_claim_g_is_judged_on_a_gpu_only():
    t, r = timings(per_token={"mingru-scan": 1.0, "torch-gru": 1.3})
    c = claims.claim_g(t, r)
    assert c.verdict == "not measured"
    assert c.evidence.startswith("no CUDA device ran it; cpu (Test): 1.3x [")
    assert "at T = 256, b16 h256 (a CPU factor, not comparable with the paper's GPU; the paper: 175x at T = 512)" \
        in c.evidence                                                # 256 is the nearest T run to 512
    for factor, verdict in ((100.0, "supported"), (50.0, "partly supported"), (10.0, "contradicted")):
        g, gr = timings(GPU, per_token={"mingru-scan": 1.0, "torch-gru": factor})
        assert claims.claim_g(pd.concat([t, g]), pd.concat([r, gr])).verdict == verdict, factor


def test_the_speedup_and_closed_form_tables_in_human_units():
    from harness.report import views
    t, r = timings(per_token={"mingru-scan": 0.5, "mingru-loop": 1.0})
    v = views.speedups_view(parallel.speedups(t, r))
    assert list(v.columns) == ["device", "phase", "fast", "slow", "basis", "hidden", "T", "speed-up", "verdict"]
    assert v.iloc[0].tolist()[2:] == ["mingru-scan", "mingru-loop", "equal hidden", "256", 64, "2.00x [2.00, 2.00]",
                                      "faster"]
    decay = pd.DataFrame([{"status": "ok", "task": "", "device": "cpu", "dtype": "float32", "impl": "minlstm-scan",
                           "cell": "minlstm", "forget_bias": 1.0, "hidden": 64, "seq_len": 100, "batch": 4, "seeds": 5,
                           "wrt": wrt, "decay_factor": f, "decay_ci_low": f - 0.01, "decay_ci_high": f + 0.01,
                           "vanish_distance": vd} for wrt, f, vd in (("x", 0.607, 14), ("gates", 0.6071, 14))])
    rows = parallel.closed_form_rows(decay)
    assert views.closed_form_view(rows).iloc[0].tolist() == [
        "minlstm-scan", "cpu", "float32", 1.0, 64, 100, 5, "0.607 [0.597, 0.617]", "0.607 [0.597, 0.617]", 14, 14]
    assert parallel.closed_form_sentence(rows) == [
        "A min cell's gradient is a product of its a gates (f' for minLSTM, 1 - z for minGRU), with no recurrent "
        "matrix; per-step decay of ||dL/dx_t|| at initialisation, measured beside the closed form of ||dL/dh_t||: "
        "minlstm-scan fb 1 0.607 (closed form 0.607)."]
