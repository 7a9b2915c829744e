/*
 * insn-hist: a TCG plugin for qemu-system-aarch64 (plugin API v1, QEMU 7.2 as
 * Debian 12 ships it, which has no qemu-plugin.h: the few functions used are
 * declared by hand, as in ../../shared/tools/qemu-insn-profile).
 *
 * It counts how often each instruction inside one address range (the
 * hypervisor's code) executes, and prints the non-zero counts at exit, so the
 * runner can attribute EL2 instructions to functions by symbol and debug info
 * (`cargo xtask bench`: the crate/host split). Load it beside insn-profile; run
 * QEMU with one TCG thread so the inline counters are not racy.
 *
 *   -plugin libinsn-hist.so,lo=0x40200000,hi=0x40280000 -d plugin
 *
 * Output (on QEMU's log), one line per executed instruction address, then a total:
 *   insn-hist: <pc hex> <count>
 *   insn-hist-total: <sum of all counts>
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef uint64_t qemu_plugin_id_t;
struct qemu_plugin_tb;
struct qemu_plugin_insn;
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };
typedef void (*tb_trans_cb)(qemu_plugin_id_t, struct qemu_plugin_tb *);
typedef void (*udata_cb)(qemu_plugin_id_t, void *);
extern void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t, tb_trans_cb);
extern size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *);
extern struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *, size_t);
extern uint64_t qemu_plugin_insn_vaddr(const struct qemu_plugin_insn *);
extern void qemu_plugin_register_vcpu_insn_exec_inline(struct qemu_plugin_insn *, enum qemu_plugin_op, void *, uint64_t);
extern void qemu_plugin_register_atexit_cb(qemu_plugin_id_t, udata_cb, void *);
extern void qemu_plugin_outs(const char *);

__attribute__((visibility("default"))) int qemu_plugin_version = 1;

static uint64_t lo, hi;
/* One counter per 4-byte slot of [lo, hi). */
static uint64_t *counts;

static void tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb) {
    size_t n = qemu_plugin_tb_n_insns(tb);
    for (size_t k = 0; k < n; k++) {
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, k);
        uint64_t pc = qemu_plugin_insn_vaddr(insn);
        if (pc >= lo && pc < hi)
            qemu_plugin_register_vcpu_insn_exec_inline(insn, QEMU_PLUGIN_INLINE_ADD_U64,
                                                       &counts[(pc - lo) / 4], 1);
    }
}

static void at_exit(qemu_plugin_id_t id, void *p) {
    char buf[64];
    uint64_t total = 0;
    for (uint64_t k = 0; k < (hi - lo) / 4; k++) {
        if (!counts[k]) continue;
        total += counts[k];
        snprintf(buf, sizeof buf, "insn-hist: %" PRIx64 " %" PRIu64 "\n", lo + 4 * k, counts[k]);
        qemu_plugin_outs(buf);
    }
    snprintf(buf, sizeof buf, "insn-hist-total: %" PRIu64 "\n", total);
    qemu_plugin_outs(buf);
}

__attribute__((visibility("default")))
int qemu_plugin_install(qemu_plugin_id_t id, const void *info, int argc, char **argv) {
    for (int k = 0; k < argc; k++) {
        if (!strncmp(argv[k], "lo=", 3)) lo = strtoull(argv[k] + 3, 0, 0);
        if (!strncmp(argv[k], "hi=", 3)) hi = strtoull(argv[k] + 3, 0, 0);
    }
    if (hi <= lo || (lo & 3) || hi - lo > (1u << 28)) {
        fprintf(stderr, "insn-hist: give the code range as lo=0x..,hi=0x.. (hi > lo, lo 4-aligned, < 256 MiB)\n");
        return -1;
    }
    counts = calloc((hi - lo + 3) / 4, sizeof *counts);
    if (!counts) {
        fprintf(stderr, "insn-hist: out of memory\n");
        return -1;
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, tb_trans);
    qemu_plugin_register_atexit_cb(id, at_exit, NULL);
    return 0;
}
