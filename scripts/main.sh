#!/bin/sh
# The main job (README "Run the main job"): build liblvmmed, pretrain a ResNet-18 with
# LVM-Med for a few minutes on the bundled real MRI images (data/demo/pretrain), then
# probe the frozen features on a bundled labeled task, once for the pretrained backbone
# and once for the same backbone randomly initialised, and print both.
#
# The demo's settings are chosen for a few minutes on two cores, not METHOD.md's
# 100-epoch defaults: 64 px views, milder crops without colour jitter, Gumbel noise of
# scale 0.1 and no GCN layers (with two GCN layers the kNN-averaged node features let
# the matching loss fall only over far longer runs), Adam at 1e-3.
#
# Environment: STEPS (default 300), THREADS (default: all CPUs), TASK (default
# data/demo/probe_plane; also probe_lobe, probe_lobe2),
# OUT (default build-release/demo).
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
sh scripts/install_deps.sh
if [ -d build-release/meson-private ]; then
  meson setup --reconfigure build-release -Dbuildtype=release >/dev/null
else
  meson setup build-release -Dbuildtype=release >/dev/null
fi
ninja -C build-release
lvmmed=./build-release/tools/lvmmed
$lvmmed version

steps=${STEPS:-300}
out=${OUT:-build-release/demo}
task=${TASK:-data/demo/probe_plane}
size=${SIZE:-64}
mkdir -p "$out"
rm -f "$out/pretrain.csv"

echo
echo "== LVM-Med pretraining: resnet18 at ${size}px, $steps steps of 32 image pairs on data/demo/pretrain =="
set -- --data data/demo/pretrain --out "$out/resnet18_${size}.safetensors" --arch resnet18 \
  --image-size "$size" --batch 32 --steps "$steps" --seed 0 --log "$out/pretrain.csv" \
  --checkpoint-every 100 --crop-min 0.3 --no-color --noise-scale 0.1 --gcn-layers 0 --lr 1e-3
if [ -n "${THREADS:-}" ]; then set -- "$@" --threads "$THREADS"; fi
$lvmmed pretrain "$@"

echo
echo "== Linear probe and k-NN on $task (frozen features) =="
$lvmmed probe --weights "$out/resnet18_${size}.safetensors" --image-size "$size" \
  --train "$task/train" --test "$task/test" --json > "$out/probe_pretrained.json"
$lvmmed probe --random --arch resnet18 --seed 0 --image-size "$size" \
  --train "$task/train" --test "$task/test" --json > "$out/probe_random.json"
/usr/bin/python3 - "$out" <<'EOF'
import json, sys
out = sys.argv[1]
pre = json.load(open(f"{out}/probe_pretrained.json"))
rnd = json.load(open(f"{out}/probe_random.json"))
keys = [k for k in ("linear_accuracy", "knn_accuracy", "auc") if pre.get(k) is not None and rnd.get(k) is not None]
print(f"{'':22}" + "".join(f"{k:>18}" for k in keys))
for name, r in (("LVM-Med pretrained", pre), ("random init", rnd)):
    print(f"{name:22}" + "".join(f"{r[k]:18.4f}" for k in keys))
print(f"{'difference':22}" + "".join(f"{pre[k] - rnd[k]:+18.4f}" for k in keys))
win = pre["linear_accuracy"] > rnd["linear_accuracy"]
print("pretrained backbone " + ("beats" if win else "does NOT beat") + " random initialisation on the linear probe")
EOF
