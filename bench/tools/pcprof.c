/* pcprof: a QEMU 7.2 TCG plugin (API v1) counting executions per PC inside [lo,hi);
 * writes "pc count" lines to the file out= at exit. Used by bench/tools/prof.sh. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
typedef uint64_t qemu_plugin_id_t;
struct qemu_plugin_tb; struct qemu_plugin_insn;
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };
typedef void (*tb_trans_cb)(qemu_plugin_id_t, struct qemu_plugin_tb *);
typedef void (*udata_cb)(qemu_plugin_id_t, void *);
extern void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t, tb_trans_cb);
extern size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *);
extern struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *, size_t);
extern uint64_t qemu_plugin_insn_vaddr(const struct qemu_plugin_insn *);
extern void qemu_plugin_register_vcpu_insn_exec_inline(struct qemu_plugin_insn *, enum qemu_plugin_op, void *, uint64_t);
extern void qemu_plugin_register_atexit_cb(qemu_plugin_id_t, udata_cb, void *);
__attribute__((visibility("default"))) int qemu_plugin_version = 1;
static uint64_t lo, hi, *cnt; static char *file;
static void tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb) {
    size_t n = qemu_plugin_tb_n_insns(tb);
    for (size_t k = 0; k < n; k++) {
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, k);
        uint64_t pc = qemu_plugin_insn_vaddr(insn);
        if (pc >= lo && pc < hi)
            qemu_plugin_register_vcpu_insn_exec_inline(insn, QEMU_PLUGIN_INLINE_ADD_U64, &cnt[(pc - lo) / 4], 1);
    }
}
static void at_exit(qemu_plugin_id_t id, void *p) {
    FILE *f = fopen(file, "w");
    for (uint64_t i = 0; i < (hi - lo) / 4; i++)
        if (cnt[i]) fprintf(f, "%" PRIx64 " %" PRIu64 "\n", lo + 4 * i, cnt[i]);
    fclose(f);
}
__attribute__((visibility("default")))
int qemu_plugin_install(qemu_plugin_id_t id, const void *info, int argc, char **argv) {
    for (int k = 0; k < argc; k++) {
        if (!strncmp(argv[k], "lo=", 3)) lo = strtoull(argv[k] + 3, 0, 0);
        if (!strncmp(argv[k], "hi=", 3)) hi = strtoull(argv[k] + 3, 0, 0);
        if (!strncmp(argv[k], "out=", 4)) file = strdup(argv[k] + 4);
    }
    cnt = calloc((hi - lo) / 4 + 1, 8);
    qemu_plugin_register_vcpu_tb_trans_cb(id, tb_trans);
    qemu_plugin_register_atexit_cb(id, at_exit, NULL);
    return 0;
}
