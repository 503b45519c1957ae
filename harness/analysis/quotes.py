"""The tutorial's claims in its own words, and one of a paper's: what claims.py tests, quoted.

Each Statement is a claim as the tutorial (../shared/seed/) states it: a verbatim substring of its
text (whose punctuation the copy in ../shared/seed/ has lost), the same in English, the claim in a
line as lstm-bench tests it, and what it measures to test it. claims.py judges them; the report
quotes them beside each verdict.
"""
from __future__ import annotations

from dataclasses import dataclass

TUTORIAL = "the tutorial (../shared/seed/)"
FENG_2024 = ("Feng, Tung, Ahmed, Bengio & Hajimirsadeghi 2024, \"Were RNNs All We Needed?\" (arXiv 2410.01201), "
             "abstract; measured on a T4 GPU")


@dataclass(frozen=True)
class Statement:
    """A claim as the tutorial (../shared/seed/) states it, and what is measured to test it."""
    key: str
    claim: str            # the claim in a line, as tested here
    quote_zh: str         # the tutorial's own words (a verbatim substring of its text); "" for another source's
    quote_en: str         # the same, in English (another source's: its own words, verbatim)
    measured: str         # what lstm-bench measures to test it
    source: str = TUTORIAL   # whose words they are


STATEMENTS = {s.key: s for s in [
    Statement("a", "(a) An RNN's gradients vanish or explode with distance", "容易造成梯度消失/爆炸",
              "[an RNN] easily causes vanishing/exploding gradients",
              "||dL/dx_t|| against distance for every RNN configuration of the [[gradients]] sections; the fitted "
              "per-step decay factor and its 95% interval over seeds"),
    Statement("b", "(b) The LSTM eases the vanishing gradient better than an RNN",
              "相比于RNN而言LSTM能够更高地捕捉长期依赖而且也更好的缓解了梯度消失问题",
              "compared with an RNN, the LSTM captures long-term dependencies better and also eases the "
              "vanishing-gradient problem better",
              "the decay factor of each LSTM beside the tanh RNN of the same hidden size, sequence length, init and "
              "spectral radius; the distance at which each falls below the vanishing threshold; after training on "
              "a task, the gradient at the far end"),
    Statement("c", "(c) An LSTM learns a long-range dependency that an RNN cannot", "解决长距离依赖问题保留长期信息",
              "[the LSTM] solves the long-distance dependency problem and keeps long-term information",
              "seeds solved (held-out loss below 0.1x the constant predictor's) after training on the [[task]] "
              "sections (adding, copy), the LSTM beside the tanh RNN at each task and T"),
    Statement("d", "(d) An LSTM has more parameters than an RNN (4x: three gates and the candidate)",
              "由于LSTM引入了三个门控机制导致参数量比RNN要多",
              "because the LSTM introduces three gates, it has more parameters than an RNN",
              "the parameter counts of an LSTM and an RNN at equal input and hidden sizes"),
    Statement("e", "(e) An LSTM trains more slowly than an RNN (and by how much)", "参数量比RNN要多训练慢",
              "[it has] more parameters than an RNN and trains slowly",
              "train-step time (forward + backward) of an LSTM and an RNN at equal sizes on one backend, timed "
              "round-robin in one comparison group"),
    Statement("f", "(f) nn.LSTM and the vendor kernels are faster than the scratch LSTM (by how much)",
              "在Pytroch中已经内置了lstm函数我们只需要调用就可以实现上述操作",
              "PyTorch has the LSTM built in: we only need to call it to do the above (the tutorial says no more; "
              "that the library is faster is the common claim, tested here)",
              "time of scratch-lstm (the tutorial's loop) over each library kernel at equal sizes, per phase"),
    Statement("g", "(g) minGRU trains far faster than the GRU: 175x at T = 512 (Feng et al. 2024)", "",
              "fully parallelizable during training (175× faster for a sequence of length 512)",
              "train-step time of torch-gru over mingru-scan (the log-space scan) at T = 512 or the nearest T run, "
              "timed round-robin in one comparison group, on each device", source=FENG_2024),
]}
