#!/bin/sh
# Bring the public labelled real-world corpora of bench/anomaly/real_corpora.py, at pinned commits, into
# bench/anomaly/data/real/ (git-ignored; ~25 MB). Needs network access to github.com.
#   sh bench/anomaly/fetch_real.sh            # then: PYTHONPATH=. python bench/anomaly/evaluate_real.py
# WK_REAL_SOURCE=/path/to/mirrors uses local clones (<dir>/<owner>+<name>/repo) instead of github.com.
set -eu
dest="$(dirname "$0")/data/real"
mkdir -p "$dest"
get() {  # owner/name commit directory
    src="https://github.com/$1.git"
    if [ -n "${WK_REAL_SOURCE:-}" ]; then src="$WK_REAL_SOURCE/$(echo "$1" | tr / +)/repo"; fi
    if [ ! -d "$dest/$3/.git" ]; then git clone --quiet --no-checkout "$src" "$dest/$3"; fi
    git -C "$dest/$3" -c advice.detachedHead=false checkout --quiet "$2"
    echo "$1 @ $2 -> $dest/$3"
}
get microsoft/cloud-monitoring-dataset 6a07a53c2fac495fb6831811df4c980d6c04bd10 cloud-monitoring-dataset
get waico/SKAB b2c0d46c2971dcbfe71e26087b6d231998bb91c2 SKAB
