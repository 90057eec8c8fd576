"""rnnlm: the character-level RNN language models of d2l.ai §9.5-9.6 as a Lightning + Hydra
project, and the autoregressive series of §9.1 with the same recurrent cores.

The top-level modules are the book's code and the three tasks (`rnnlm.train`,
`rnnlm.generate`, `rnnlm.evaluate`); each extension is a wing beside them: `rnnlm.ops`, the
run machinery; `rnnlm.scoring`, dynamic evaluation, PPM and ensembles; `rnnlm.sine`, the §9.1
series. The rules, checked by `tests/test_layout.py`: only the tasks import a wing, a wing
imports the book and the wings its docstring names, no import cycle. The layout, module by
module: docs/development.md.
"""
