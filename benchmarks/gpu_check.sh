#!/usr/bin/env bash
# Every GPU figure in one short run (about 8 minutes on one H100):
#
#   bash benchmarks/gpu_check.sh [--dry-run] [--data FILE] [--out DIR]
#
# (a) the device, torch and CUDA versions; (b) the book's 100-epoch runs of model=scratch and
# model=concise on trainer=gpu, val/ppl and whole-run seconds, eager and with
# model.cuda_graphs=true, and experiment=whole_book on the GPU; (c) bench_train.py --device cuda
# at the book's setting, 256 and 1024 hidden units (scratch, concise with cuDNN, the book's
# loop); (d) a 1-device trainer=ddp run; (e) one JSON, benchmarks/results/gpu_check.json, and
# a table.
#
# --dry-run runs the same steps on the CPU with 1 epoch and tiny sizes (under 3 minutes; the
# runs with model.cuda_graphs=true, which needs a GPU, are recorded as skipped), into
# outputs/gpu_check_dry_run.json (git-ignored) unless --out says where: proof that the script
# works before a GPU is available.
set -euo pipefail
cd "$(dirname "$0")/.."

DRY=0
DATA="${RNNLM_TIMEMACHINE:-data/timemachine.txt}"
OUT=
while [ $# -gt 0 ]; do
    case "$1" in
        --dry-run) DRY=1 ;;
        --data) DATA="$2"; shift ;;
        --out) OUT="$2"; shift ;;
        *) echo "error: $1 is not an option: use --dry-run, --data FILE, --out DIR" >&2; exit 2 ;;
    esac
    shift
done
if [ -z "$OUT" ]; then
    if [ "$DRY" = 1 ]; then OUT=outputs; else OUT=benchmarks/results; fi
fi
mkdir -p "$OUT"
if [ ! -f "$DATA" ]; then
    echo "error: --data $DATA does not exist: give the path of timemachine.txt" >&2
    exit 2
fi
PY="${PYTHON:-python}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
# A step that fails is recorded and the later steps still run: one short GPU call gathers
# every figure it can. The script exits 1 at the end if any step failed.
FAILED=()
step() {
    local name="$1"; shift
    if ! "$@"; then
        FAILED+=("$name")
        [ -f "$WORK/$name.json" ] ||
            printf '{"ok": false, "error": "%s exited non-zero"}\n' "$name" >"$WORK/$name.json"
    fi
}

if [ "$DRY" = 1 ]; then
    DEVICE=cpu; TRAINER=(trainer=cpu); EPOCHS=1; NAME=gpu_check_dry_run
    SIZES=(data.num_train=200 data.num_val=100 data.batch_size=64 ~callbacks.text_samples)
    SETTINGS=tiny; BENCH=(--epochs 1 --warmup 0)
    DDP=(trainer=ddp trainer.accelerator=cpu trainer.devices=1)
    WHOLE=(trainer.max_epochs=1 model.rnn.num_hiddens=16 data.batch_size=64 data.num_steps=16
        +callbacks.dynamic_test.gradient_batches=2 callbacks.dynamic_test.bptt=400)
else
    DEVICE=cuda; TRAINER=(trainer=gpu); EPOCHS=100; NAME=gpu_check; SIZES=()
    SETTINGS=book,h256,h1024; BENCH=(--epochs 3 --warmup 1)
    DDP=(trainer=ddp trainer.accelerator=gpu trainer.devices=1)
    WHOLE=(trainer.max_time=00:00:02:00)  # the target, as a bound: the check stays within 8 minutes
fi
COMMON=(data.path="$DATA" ~callbacks.progress_bar ~callbacks.model_summary ~logger)

echo "== (a) device"
"$PY" benchmarks/gpu_steps.py device --device "$DEVICE" --json "$WORK/device.json"

echo "== (b) the book's runs"
for model in scratch concise; do
    step "run-$model" "$PY" benchmarks/gpu_steps.py run --json "$WORK/run-$model.json" \
        --run-dir "$WORK/$model" -- "$PY" train.py model="$model" "${TRAINER[@]}" \
        trainer.max_epochs="$EPOCHS" "${SIZES[@]}" "${COMMON[@]}" hydra.run.dir="$WORK/$model"
done

for model in scratch concise; do
    if [ "$DRY" = 1 ]; then  # graphs are recorded on a GPU only
        printf '{"ok": true, "skipped": "model.cuda_graphs=true needs a CUDA GPU"}\n' \
            >"$WORK/run-$model-graphs.json"
        continue
    fi
    step "run-$model-graphs" "$PY" benchmarks/gpu_steps.py run --json "$WORK/run-$model-graphs.json" \
        --run-dir "$WORK/$model-graphs" -- "$PY" train.py model="$model" "${TRAINER[@]}" \
        model.cuda_graphs=true trainer.max_epochs="$EPOCHS" "${SIZES[@]}" "${COMMON[@]}" \
        hydra.run.dir="$WORK/$model-graphs"
done
step run-whole-book "$PY" benchmarks/gpu_steps.py run --json "$WORK/run-whole-book.json" \
    --run-dir "$WORK/whole-book" -- "$PY" train.py experiment=whole_book "${TRAINER[@]}" \
    "${WHOLE[@]}" "${COMMON[@]}" hydra.run.dir="$WORK/whole-book"

echo "== (c) training throughput"
step bench_train "$PY" benchmarks/bench_train.py --data "$DATA" --device "$DEVICE" \
    --settings "$SETTINGS" "${BENCH[@]}" --json "$WORK/bench_train.json"

echo "== (d) one-device DDP"
step run-ddp "$PY" benchmarks/gpu_steps.py run --json "$WORK/run-ddp.json" --run-dir "$WORK/ddp" \
    -- "$PY" train.py model=scratch "${DDP[@]}" trainer.max_epochs=1 "${SIZES[@]}" "${COMMON[@]}" \
    hydra.run.dir="$WORK/ddp"

echo "== (e) report"
"$PY" benchmarks/gpu_steps.py report --work "$WORK" --out "$OUT/$NAME.json"
if [ "${#FAILED[@]}" -gt 0 ]; then
    echo "error: these steps failed: ${FAILED[*]}" >&2
    exit 1
fi
