"""A wing: the run machinery around the book. Imports the book and the `sampling` wing
(text samples in TensorBoard).

cli      a UserError as one line and exit 2; the command line checked before Hydra runs
folders  run folders (a refused run removes only what it made), the lock of a live run
files    files written whole; resume: checkpoints written whole, resuming, stops
checks   a run's settings checked before anything is built; trainer: the Trainer and its plugins
sweep    a sweep's summary.csv and summary.png; board: what TensorBoard shows, results.json
report   what a finished run keeps in results.json and prints
prompt   generate.py's prefix and the settings that change nothing
"""
