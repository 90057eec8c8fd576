"""A wing: what Hydra, Lightning and TensorBoard cannot do for a run. Imports the book only.

folders, sweep   the run folder (refused, locked, cleaned after a refused run); summary.csv
resume, trainer  checkpoints written whole, resume checks, stops; settings checked, the Trainer
board            TensorBoard's views; a finished run's results.json and summary
"""
