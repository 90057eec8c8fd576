"""rnnlm: the character-level RNN language models of d2l.ai §9.5-9.6 as a Lightning + Hydra
project, and the autoregressive series of §9.1 with the same recurrent cores.

The top-level modules are the book's code and the three tasks (`rnnlm.train`,
`rnnlm.generate`, `rnnlm.evaluate`); each extension is a wing beside them: `fast` (the book's
classes, faster), `cores` (GRU, LSTM, weight drop), `text` (any text as the model reads it),
`sampling`, `scoring` (dynamic evaluation, PPM, ensembles), `sine` (the §9.1 series) and `ops`
(the run machinery). Only the tasks import a wing, a wing imports the book and the wings its
docstring names, no import cycle (`tests/test_layout.py`; the layout: docs/development.md).
"""
