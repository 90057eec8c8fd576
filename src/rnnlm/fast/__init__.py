"""A wing: the book's classes, faster, with the same numbers (the tests check them against
the book's). `model=scratch` and `model=concise` run these; `model=scratch_book` and
`model=concise_book` run the book's own classes.

core     `FastRNNScratch`: the scratch core's loop as one autograd node (`Recurrence`)
output   the output layer and the cross-entropy class-major, gradients written out
lm       `FastRNNLMScratch`, `FastRNNLM`: those, plus `torch.compile` and CUDA graphs
threads  how many CPU threads torch computes with (`threads=...`); imports no torch
cpu      `ShareCores` (threads=auto while training), the allocator, the work of a step
"""
