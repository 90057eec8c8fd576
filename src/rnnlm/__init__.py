"""rnnlm: the character-level RNN language models of d2l.ai §9.5-9.6 (and §9.1's series) as a
Lightning + Hydra project.

The top-level modules are the book's code and the three tasks (`train`, `generate`, `evaluate`);
each extension is a wing beside them: `fast`, `cores`, `text`, `sampling`, `scoring`, `sine`,
`ops`. The rules (only the tasks import a wing; a wing, the book and the wings its docstring
names; no cycle) are tests/test_layout.py's; the layout is in docs/development.md."""
