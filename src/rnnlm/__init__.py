"""rnnlm: the character-level RNN language models of d2l.ai §9.5-9.6 as a Lightning + Hydra
project, and the autoregressive series of §9.1 with the same recurrent cores.

Layers, each importing only those below it:

- entry points (`train.py`, `generate.py`, `eval.py` at the top of the project) and the CLI
  layer beside them (`rnnlm.cli`: one-line errors, Hydra callbacks, the multirun query;
  `rnnlm.sweep`: sweep reports; `rnnlm.threads`: the CPU thread policy, applied before torch
  is imported);
- tasks: `rnnlm.train`, `rnnlm.generate`, `rnnlm.evaluate` (a task never imports another:
  shared run-time helpers are in `rnnlm.runtime`, TensorBoard's views in `rnnlm.board`);
- data (`rnnlm.data` with `rnnlm.corpus`, `rnnlm.windows`, `rnnlm.streams`, `rnnlm.download`;
  `rnnlm.sine` for the series) and the models (`rnnlm.lm`, `rnnlm.output`, `rnnlm.sampling`,
  `rnnlm.callbacks`, `rnnlm.checkpoints`, `rnnlm.partials`: optimizer and scheduler configs;
  `rnnlm.sine.SineRNN`);
- cores (`rnnlm.rnn`): plain `nn.Module`s that know nothing of Hydra or Lightning;
- `rnnlm.errors`, used by every layer: `UserError` and the value checks.
"""
