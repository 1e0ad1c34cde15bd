#!/usr/bin/env bash
# Paper-sized CIFAR-10 protocol on one GPU: supernets of the three spaces on the full training split (50,000
# images), evaluated on the full test split (10,000): mbv3 at RNC's 64x64 (arXiv 2409.18841), nax and imc-blocks
# at CIFAR-10's native 32x32 (NAX, DAC 2022; multi-objective NAS for IMC, 2024). Sized for about 10 minutes on one
# modern GPU (an H100/H200-class card; measured figures go to benchmarks/RESULTS.md); `--smoke` runs the same
# path on a CPU in about a minute with a tiny setting (16x16, 10 images per class, one epoch).
#
# Usage:
#   benchmarks/gpu_protocol.sh [--smoke] [--data-root DIR] [--out DIR]
# Environment overrides: EPOCHS_MBV3, EPOCHS_NAX, EPOCHS_IMC, BATCH_SIZE, LR, PER_CLASS, TEST_PER_CLASS, PYTHON.
#
# Writes, under --out (default rnc-runs/gpu-protocol): one checkpoint per space (sn-<space>/), the command logs,
# and summary.json: per space the device, resolution, images, epochs, training seconds, images/s, and the
# largest and smallest subnets' top-1 (batch-norm recalibrated) -- label them "CIFAR-10 (JPEG copy)" when the
# data is the JPEG copy (format "imagefolder" in the summary).
set -euo pipefail

smoke=0
data_root="${RNC_CIFAR10_ROOT:-../shared/datasets/cifar10-jpeg}"
out="rnc-runs/gpu-protocol"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --smoke) smoke=1; shift ;;
    --data-root) data_root="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "gpu_protocol.sh: unknown argument $1 (expected --smoke, --data-root DIR, --out DIR)" >&2; exit 2 ;;
  esac
done
if [[ ! -d "$data_root/train" && ! -d "$data_root/cifar-10-batches-py" ]]; then
  echo "gpu_protocol.sh: no CIFAR-10 in $data_root (expected train/<class>/ or cifar-10-batches-py/); pass --data-root DIR" >&2
  exit 2
fi
python="${PYTHON:-python}"
if [[ $smoke == 1 ]]; then
  sizes=(16 16 16); epochs=(1 1 1); per_class="${PER_CLASS:-10}"; test_per_class="${TEST_PER_CLASS:-5}"
  batch="${BATCH_SIZE:-20}"; lr="${LR:-0.05}"
else
  sizes=(64 32 32); epochs=("${EPOCHS_MBV3:-8}" "${EPOCHS_NAX:-10}" "${EPOCHS_IMC:-10}")
  per_class="${PER_CLASS:-}"; test_per_class="${TEST_PER_CLASS:-}"; batch="${BATCH_SIZE:-256}"; lr="${LR:-0.2}"
fi
spaces=(mbv3 nax imc-blocks)
mkdir -p "$out"
"$python" -c "import torch; print('device:', 'cuda ' + torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'cpu')" \
  | tee "$out/device.txt"
for i in 0 1 2; do
  space="${spaces[$i]}"
  args=(--space "$space" --dataset cifar10 --data-root "$data_root" --image-size "${sizes[$i]}"
        --epochs "${epochs[$i]}" --batch-size "$batch" --lr "$lr" --out "$out/sn-$space" --quiet)
  [[ -n "$per_class" ]] && args+=(--per-class "$per_class")
  [[ -n "$test_per_class" ]] && args+=(--test-per-class "$test_per_class")
  [[ $space == imc-blocks && ${sizes[$i]} -lt 32 ]] && args+=(--option max_stages=4)
  # the recipe that ranks imc-blocks subnets best on the CPU protocols (RESULTS.md, "Issue 10, fifth session")
  [[ $space == imc-blocks ]] && args+=(--recipe split=stages)
  echo "== supernet $space at ${sizes[$i]}x${sizes[$i]}, ${epochs[$i]} epochs"
  "$python" -m rnc.platform.cli supernet train "${args[@]}" 2>&1 | tee "$out/train-$space.log"
done
"$python" - "$out" "${spaces[@]}" <<'EOF'
import json
import sys
from pathlib import Path

out, spaces = Path(sys.argv[1]), sys.argv[2:]
summary = {}
for space in spaces:
    manifest = json.loads((out / f"sn-{space}" / "manifest.json").read_text())
    m, d = manifest["metrics"], manifest["dataset"]
    summary[space] = {
        "device": manifest["training"]["device"], "format": d.get("format"), "image_size": d["image_size"],
        "per_class": d.get("per_class"), "test_per_class": d.get("test_per_class"), "epochs": manifest["epochs"],
        "batch_size": manifest["training"]["batch_size"], "split": manifest["training"]["recipe"].get("split"),
        "train_seconds": m["train_seconds"],
        "train_images_per_second": m["train_images_per_second"],
        "largest_test_accuracy": m["largest_test_accuracy"], "smallest_test_accuracy": m["smallest_test_accuracy"],
    }
(out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
print(json.dumps(summary, indent=2))
EOF
