# Everyday commands (run inside the virtual environment: . .venv/bin/activate)
# The book: the first run downloads it here (SHA-1 checked); offline, copy it here first.
BOOK ?= data/timemachine.txt

.PHONY: setup train whole-book test test-fast lint format board bench

setup:            ## venv + CPU torch + the project with its dev extra
	python3 -m venv .venv && .venv/bin/pip install torch==2.13.0 && .venv/bin/pip install -e '.[dev]'

train:            ## the book's run with the scratch model
	python train.py model=scratch

whole-book:       ## the whole book, state carried across batches, with its test figure
	python train.py experiment=whole_book

test:             ## the test suite, a worker a core (what CI runs after ruff)
	python -m pytest -n auto tests

test-fast:        ## the quick loop while editing: everything but the slow tests
	python -m pytest -m "not slow" -n auto tests

lint:
	ruff check . && ruff format --check .

format:
	ruff format . && ruff check --fix .

board:            ## TensorBoard over every run
	tensorboard --logdir outputs

bench:            ## whole-run time against the book's loop, side by side
	python benchmarks/bench_run.py --data $(BOOK)
