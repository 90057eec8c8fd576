"""rnnlm: the character-level RNN language models of d2l.ai §9.5-9.6 as a Lightning + Hydra
project.

Layers, each importing only those below it:

- entry points (`train.py`, `generate.py`, `eval.py` at the top of the project) and the CLI
  layer beside them (`rnnlm.errors`: one-line errors, Hydra callbacks; `rnnlm.sweep`);
- tasks: `rnnlm.train`, `rnnlm.generate`, `rnnlm.evaluate` (a task never imports another:
  shared run-time helpers are in `rnnlm.runtime`);
- data (`rnnlm.data` with `rnnlm.corpus`, `rnnlm.windows`, `rnnlm.streams`, `rnnlm.download`)
  and the language models (`rnnlm.lm`, `rnnlm.output`, `rnnlm.sampling`, `rnnlm.callbacks`);
- cores (`rnnlm.rnn`): plain `nn.Module`s that know nothing of Hydra or Lightning.
"""
