"""A wing: scoring a text beyond the book's static perplexity. Dynamic evaluation (`dynamic`:
score a segment, then learn from it), a PPM model's probabilities mixed in (`ppm`), and
ensembles of checkpoints (`ensemble`), all through Lightning's test loop; eval.py chooses
them (`run`: `dynamic=true`, `ppm_mixture.order=N`, `ckpt_path=[A,B]`), a run's `dynamic_test`
callback too. Imports the book only."""
