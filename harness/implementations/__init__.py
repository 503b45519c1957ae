"""The recurrent networks under test: built by name, each loading the same canonical parameters.

    registry          implementation names, backend contexts, skips; create() builds one
    models            the interface (Recurrent), the stack around a one-layer kernel, the scratch LSTM and RNN,
                      nn.LSTM / nn.RNN / nn.GRU behind it, the dummy
    fused             fused-lstm: the scratch LSTM optimised, and its analytic peak memory
    bptt              bptt-lstm: the explicit backward pass
    compiled          fused-lstm compiled: torch.compile (cell, whole loop), TorchScript, CUDA graphs
    gemm              the GEMM libraries a model's own products go through: aten (torch.mm), onednn (oneDNN)
    minrnn            minGRU and minLSTM (Feng et al. 2024): the parallel scan in log space, and the loop
    tutorial_example  the tutorial's own example, corrected so that it runs
    params            the canonical parameters (nn.LSTM's names for every layer and direction), their seeded draws
    lengths           variable-length batches: lengths drawn, packed and masked runs, reversal within lengths
"""
