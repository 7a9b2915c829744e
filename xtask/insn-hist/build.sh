#!/bin/sh
# Builds libinsn-hist.so beside this script, or at $1 (needs gcc). Prints its path.
set -e
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/libinsn-hist.so}
gcc -O2 -shared -fPIC -Wall -o "$out" "$here/insn-hist.c"
echo "$out"
