#!/usr/bin/env bash
# Lists the fuzz targets as package:Function, found in the sources so a new
# target is picked up without editing the Makefile.
set -euo pipefail
cd "$(dirname "$0")/.."
git ls-files '*_test.go' | xargs grep -l '^func Fuzz' 2>/dev/null | while read -r f; do
  pkg="./$(dirname "$f")"
  grep -o '^func Fuzz[A-Za-z0-9_]*' "$f" | sed 's/^func //' | while read -r fn; do echo "$pkg:$fn"; done
done
