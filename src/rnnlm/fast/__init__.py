"""A wing: the book's classes, faster, with the same numbers (the tests check them). `model=scratch`
and `model=concise` run these; `model=scratch_book` and `model=concise_book` the book's own.

core     `FastRNNScratch`: the scratch loop as one autograd node (`Recurrence`)
output   the output layer and cross-entropy class-major, gradients written out
lm       `FastRNNLMScratch`, `FastRNNLM`: those, `torch.compile` and CUDA graphs
threads  torch's CPU threads (`threads=N`)"""
