"""A wing: the run machinery around the book. Imports the book and the `sampling` wing (text
samples in TensorBoard).

cli, folders  one-line errors and exit 2; run folders, removing only what a run made, the lock
files, resume  files written whole; checkpoints written whole, resuming, stopped runs
checks, trainer  a run's settings checked before anything is built; the Trainer, its plugins
sweep, board, report  summary.csv/png; TensorBoard's views; results.json and the printed end
prompt  generate.py's prefix and the settings that change nothing
"""
