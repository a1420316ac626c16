#!/usr/bin/env bash
# Install size and time of one spec in a fresh virtual environment, on top of the same torch.
#   benchmarks/bench_install.sh LABEL SOURCE_DIR SPEC      e.g.  core . "."   or   demo . ".[demo]"
# Prints: the seconds of `pip install SPEC` alone (torch is installed first and not timed), the
# megabytes and packages it adds to site-packages. No pip cache is used (--no-cache-dir).
set -euo pipefail
label=$1; src=$2; spec=$3
venv=${TMPDIR:-/tmp}/bench-install-$label
rm -rf "$venv"; python3 -m venv "$venv"; . "$venv/bin/activate"
python -m pip install -q --no-cache-dir torch==2.14.1 torchvision==0.29.1
site=$(python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
base=$(du -sk "$site" | cut -f1); nbase=$(pip list 2>/dev/null | tail -n +3 | wc -l)
cd "$src"
t0=$(date +%s.%N)
python -m pip install -q --no-cache-dir "$spec"
t1=$(date +%s.%N)
after=$(du -sk "$site" | cut -f1); nafter=$(pip list 2>/dev/null | tail -n +3 | wc -l)
echo "$label spec=$spec seconds=$(echo "$t1 - $t0" | bc) added_MB=$(( (after - base) / 1024 )) packages_added=$(( nafter - nbase ))"
