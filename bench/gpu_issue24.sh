#!/bin/bash
# Issue 24's device calls (one lent H100/H200 each): unpacks the carried site, then runs one call's
# plan, keeping each step inside the call's 600 s. Usage on the device, from the repo root:
#   bash bench/gpu_issue24.sh diag|unsloth|unsloth_b4|dora|big      (carry: .gpucarry = site.tar.xz + anchor_bench.py)
# Here: tar cJf .gpucarry/site.tar.xz .gpusite  (../shared/gpu/make_site.sh .gpusite, trimmed: the
# tree that travels must stay under 64 MiB, and the packed site is 11 MB instead of 48).
set -u
call=${1:?diag|unsloth|unsloth_b4|dora|big}
t0=$(date +%s)
left() { echo $(( ${BUDGET:-570} - ($(date +%s) - t0) - ${1:-0} )); }
tar xJf .gpucarry/site.tar.xz -C /tmp && export PYTHONPATH=/tmp/.gpusite:$PWD/.gpucarry/extra:$PWD
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 UNSLOTH_DISABLE_STATISTICS=1 UNSLOTH_OFFLINE=1 PYTHONUNBUFFERED=1
A=.gpucarry/anchor_bench.py
W=/tmp/work; mkdir -p $W
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
case $call in
  diag)  # the hf path: where the job's step goes against anchor A, and the levers' A/B
    timeout $(left 330) python3 bench/gpu_profile.py drive --out $W/prof --variants collate,anchor:b4,job:b4 \
      --anchor $A --steps 10 2>&1 | grep -v Warning
    python3 bench/gpu_speed.py --plan hf_diag --anchor $A --root $W/root --out $W/speed --deadline $(left 15) 2>&1 | grep -v Warning ;;
  unsloth)
    python3 bench/gpu_speed.py --plan unsloth_warm --anchor $A --root $W/root --out $OUT --deadline $(left 15) 2>&1 | grep -v Warning ;;
  unsloth_b4)
    python3 bench/gpu_speed.py --plan unsloth_b4 --anchor $A --root $W/root --out $OUT --deadline $(left 5) 2>&1 | grep -v Warning ;;
  dora)  # writes straight into $OUT: what a call cut short by the budget has done still comes back
    python3 bench/gpu_speed.py --plan dora_ab --anchor $A --root $W/root --out $OUT --deadline $(left 5) 2>&1 | grep -v Warning ;;
  big)
    python3 bench/gpu_speed.py --plan seeds_big --anchor $A --root $W/root --out $OUT --deadline $(left 15) 2>&1 | grep -v Warning ;;
esac
# at most 8 files come back: the tables and jsons, and everything else in one archive
cp $W/speed/table.md $OUT/ 2>/dev/null; cp $W/speed/speed.json $OUT/ 2>/dev/null; cp $W/prof/profile.json $OUT/ 2>/dev/null
cp $W/speed/goals.md $OUT/ 2>/dev/null
tar czf $OUT/logs.tgz -C $W --exclude='*.safetensors' --exclude='checkpoint-*' --exclude=dataset --exclude='collate*' --exclude='*.bin' --exclude='*.pt' --exclude=cache . 2>/dev/null
echo "call $call: $(( $(date +%s) - t0 )) s"
