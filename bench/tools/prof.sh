#!/bin/bash
# prof.sh <scenario> <n1> <n2> [k]: per-PC EL2 instructions per round trip (k round trips per iter)
set -e
W=${W:-$(cd "$(dirname "$0")/../.." && pwd)}
sc=$1; n1=$2; n2=$3; k=${4:-1}
T=${TT:-$W/target}/aarch64-unknown-none-softfloat/release
hv=$T/refhv; g=$T/$sc
lo=0x$(nm $hv | awk '$3=="__text_start"{print $1}'); hi=0x$(nm $hv | awk '$3=="__text_end"{print $1}')
out=${OUT:-$W/target/bench/pcprof}; mkdir -p $out
# The per-address counter is the bench's own (xtask/insn-hist, also behind the
# crate/host split of `cargo xtask bench`).
sh "$W/xtask/insn-hist/build.sh" $out/libinsn-hist.so >/dev/null
run() {
  timeout 300 qemu-system-aarch64 -M virt,virtualization=on,gic-version=3 -cpu max,pauth-impdef=on -m 1G -nographic \
    -semihosting-config enable=on,target=native -kernel $hv -device loader,file=$g,addr=0x48000000,force-raw=on \
    -append "scenario=$sc iters=$1 timing=0" -icount shift=0,align=off,sleep=off -accel tcg,thread=single -smp 1 \
    -plugin $out/libinsn-hist.so,lo=$lo,hi=$hi -d plugin -D $out/$sc-$1.pc > $out/$sc-$1.log 2>&1 || true
}
run $n1 & run $n2 & wait
llvm-objdump -d -C --no-show-raw-insn $hv > $out/hv.dis
python3 - "$out/$sc-$n1.pc" "$out/$sc-$n2.pc" $n1 $n2 $k $out/hv.dis <<'PY'
import sys,re
a={};b={}
for f,d in ((sys.argv[1],a),(sys.argv[2],b)):
    for l in open(f):
        if l.startswith('insn-hist: '):
            p,c=l.split()[1:3]; d[int(p,16)]=int(c)
n=(int(sys.argv[4])-int(sys.argv[3]))*int(sys.argv[5])
dis={};sym={};cur=None
for l in open(sys.argv[6]):
    m=re.match(r'^([0-9a-f]+) <(.*)>:',l)
    if m: cur=re.sub(r'::h[0-9a-f]{16}','',m.group(2)); continue
    m=re.match(r'^\s*([0-9a-f]+):\s+(.*)',l)
    if m: pc=int(m.group(1),16); dis[pc]=m.group(2).strip(); sym[pc]=cur
tot=0; per={}
for pc in sorted(set(a)|set(b)):
    d=(b.get(pc,0)-a.get(pc,0))/n
    if abs(d)<0.01: continue
    tot+=d; s=sym.get(pc,'?'); per[s]=per.get(s,0)+d
    print(f"{pc:x} {d:6.2f} {s[-50:]:50} {dis.get(pc,'')}")
print("TOTAL",round(tot,2))
for s,v in sorted(per.items(),key=lambda x:-x[1]): print(f"  {v:7.2f} {s}")
PY
