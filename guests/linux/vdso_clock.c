/* vdso_clock: the vDSO as a program finds it. AT_SYSINFO_EHDR in the
 * auxiliary vector points at an ELF image; its dynamic symbol table (found
 * through PT_DYNAMIC, DT_SYMTAB, DT_STRTAB, DT_HASH or DT_GNU_HASH, with the
 * versions in DT_VERSYM/DT_VERDEF) exports __vdso_clock_gettime,
 * __vdso_gettimeofday, __vdso_time, __vdso_getcpu and __vdso_clock_getres
 * at version LINUX_2.6. The program looks them up itself and calls each one
 * between two system calls of the same kind: the vDSO's time lies between
 * them (one clock), its resolution and CPU equal the system call's. It also
 * reads CLOCK_MONOTONIC through libc in a loop (libc takes the vDSO path)
 * and checks it never goes back. Only yes/no answers are printed, so the
 * output is the same natively and under emu. */
#define _GNU_SOURCE
#include <elf.h>
#include <link.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static const ElfW(Sym) *symtab;
static const char *strtab;
static const ElfW(Half) *versym;
static const ElfW(Verdef) *verdef;
static unsigned long nsyms;
static unsigned long base;            /* load address minus link address */

static int version_is(unsigned i, const char *want)
{
    if (!versym || !verdef)
        return 1;
    unsigned ndx = versym[i] & 0x7fff;
    for (const ElfW(Verdef) *d = verdef;; d = (const void *)((const char *)d + d->vd_next)) {
        if (d->vd_ndx == ndx && !(d->vd_flags & VER_FLG_BASE)) {
            const ElfW(Verdaux) *a = (const void *)((const char *)d + d->vd_aux);
            return strcmp(strtab + a->vda_name, want) == 0;
        }
        if (!d->vd_next)
            return 0;
    }
}

static void *lookup(const char *name)
{
    for (unsigned long i = 1; i < nsyms; i++) {
        const ElfW(Sym) *s = &symtab[i];
        if (s->st_shndx == SHN_UNDEF || ELF64_ST_TYPE(s->st_info) != STT_FUNC)
            continue;
        if (strcmp(strtab + s->st_name, name) == 0 && version_is(i, "LINUX_2.6"))
            return (void *)(base + s->st_value);
    }
    return NULL;
}

static unsigned long gnu_hash_nsyms(const Elf32_Word *h)
{
    /* the number of symbols is one past the last chain's end */
    Elf32_Word nbuckets = h[0], symoffset = h[1], bloom = h[2];
    const Elf32_Word *buckets = (const void *)((const char *)(h + 4) + bloom * sizeof(ElfW(Addr)));
    const Elf32_Word *chain = buckets + nbuckets;
    unsigned long last = 0;
    for (Elf32_Word b = 0; b < nbuckets; b++)
        if (buckets[b] > last)
            last = buckets[b];
    if (last < symoffset)
        return symoffset;
    while (!(chain[last - symoffset] & 1))
        last++;
    return last + 1;
}

static int load_vdso(void)
{
    const ElfW(Ehdr) *eh = (const void *)getauxval(AT_SYSINFO_EHDR);
    if (!eh || memcmp(eh->e_ident, ELFMAG, SELFMAG) || eh->e_ident[EI_CLASS] != ELFCLASS64)
        return 0;
    const ElfW(Phdr) *ph = (const void *)((const char *)eh + eh->e_phoff);
    const ElfW(Dyn) *dyn = NULL;
    int have_load = 0;
    for (int i = 0; i < eh->e_phnum; i++) {
        if (ph[i].p_type == PT_LOAD && !have_load) {
            base = (unsigned long)eh + ph[i].p_offset - ph[i].p_vaddr;
            have_load = 1;
        } else if (ph[i].p_type == PT_DYNAMIC) {
            dyn = (const void *)((const char *)eh + ph[i].p_offset);
        }
    }
    if (!have_load || !dyn)
        return 0;
    for (; dyn->d_tag != DT_NULL; dyn++) {
        unsigned long p = base + dyn->d_un.d_ptr;
        switch (dyn->d_tag) {
        case DT_SYMTAB: symtab = (const void *)p; break;
        case DT_STRTAB: strtab = (const void *)p; break;
        case DT_HASH: nsyms = ((const Elf32_Word *)p)[1]; break;
        case DT_GNU_HASH: if (!nsyms) nsyms = gnu_hash_nsyms((const void *)p); break;
        case DT_VERSYM: versym = (const void *)p; break;
        case DT_VERDEF: verdef = (const void *)p; break;
        }
    }
    return symtab && strtab && nsyms;
}

static long long ns(const struct timespec *t) { return t->tv_sec * 1000000000LL + t->tv_nsec; }

int main(void)
{
    int ok = load_vdso();
    printf("AT_SYSINFO_EHDR names an ELF image with a dynamic symbol table: %s\n", ok ? "yes" : "no");
    if (!ok)
        return 1;
    int (*vgettime)(clockid_t, struct timespec *) = lookup("__vdso_clock_gettime");
    int (*vgettod)(struct timeval *, void *) = lookup("__vdso_gettimeofday");
    time_t (*vtime)(time_t *) = lookup("__vdso_time");
    long (*vgetcpu)(unsigned *, unsigned *, void *) = lookup("__vdso_getcpu");
    int (*vgetres)(clockid_t, struct timespec *) = lookup("__vdso_clock_getres");
    printf("LINUX_2.6 functions: clock_gettime %s, gettimeofday %s, time %s, getcpu %s, clock_getres %s\n",
           vgettime ? "yes" : "no", vgettod ? "yes" : "no", vtime ? "yes" : "no", vgetcpu ? "yes" : "no",
           vgetres ? "yes" : "no");
    if (!vgettime || !vgettod || !vtime || !vgetcpu || !vgetres)
        return 1;

    static const clockid_t clocks[] = {CLOCK_REALTIME, CLOCK_MONOTONIC, CLOCK_BOOTTIME, CLOCK_MONOTONIC_RAW};
    static const char *names[] = {"REALTIME", "MONOTONIC", "BOOTTIME", "MONOTONIC_RAW"};
    for (int i = 0; i < 4; i++) {
        struct timespec a, b, c, r1, r2;
        syscall(SYS_clock_gettime, clocks[i], &a);
        int rv = vgettime(clocks[i], &b);
        syscall(SYS_clock_gettime, clocks[i], &c);
        int rr = vgetres(clocks[i], &r1);
        syscall(SYS_clock_getres, clocks[i], &r2);
        printf("clock_gettime(%s): returns 0 %s, between two system calls %s, resolution as the system call's %s\n",
               names[i], rv == 0 ? "yes" : "no", ns(&a) <= ns(&b) && ns(&b) <= ns(&c) ? "yes" : "no",
               rr == 0 && ns(&r1) == ns(&r2) ? "yes" : "no");
    }
    struct timespec bad;
    printf("clock_gettime(invalid clock) fails: %s\n", vgettime((clockid_t)1000, &bad) != 0 ? "yes" : "no");

    struct timeval t1, t2, t3;
    syscall(SYS_gettimeofday, &t1, NULL);
    int rv = vgettod(&t2, NULL);
    syscall(SYS_gettimeofday, &t3, NULL);
    long long u1 = t1.tv_sec * 1000000LL + t1.tv_usec, u2 = t2.tv_sec * 1000000LL + t2.tv_usec,
              u3 = t3.tv_sec * 1000000LL + t3.tv_usec;
    printf("gettimeofday: returns 0 %s, between two system calls %s\n", rv == 0 ? "yes" : "no",
           u1 <= u2 && u2 <= u3 ? "yes" : "no");

    time_t s1 = syscall(SYS_time, NULL), s2, s3;
    time_t s2r = vtime(&s2);
    s3 = syscall(SYS_time, NULL);
    printf("time: stores what it returns %s, between two system calls %s\n", s2r == s2 ? "yes" : "no",
           s1 <= s2 && s2 <= s3 ? "yes" : "no");

    unsigned cpu1 = 99, node1 = 99, cpu2 = 98, node2 = 98;
    long g = vgetcpu(&cpu1, &node1, NULL);
    syscall(SYS_getcpu, &cpu2, &node2, NULL);
    printf("getcpu: returns 0 %s, the system call's CPU and node %s\n", g == 0 ? "yes" : "no",
           cpu1 == cpu2 && node1 == node2 ? "yes" : "no");

    /* libc's own clock_gettime (the vDSO path glibc and musl take) */
    struct timespec prev, now;
    clock_gettime(CLOCK_MONOTONIC, &prev);
    int back = 0;
    for (int i = 0; i < 2000; i++) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (ns(&now) < ns(&prev))
            back++;
        prev = now;
    }
    printf("libc clock_gettime(MONOTONIC) never goes back over 2000 reads: %s\n", back ? "no" : "yes");
    return 0;
}
