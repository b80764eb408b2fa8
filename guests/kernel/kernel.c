/* A small x86-64 kernel for emu's microVM.
 *
 * Entered through the Linux 64-bit boot protocol (RSI = boot_params). It
 * builds its own page tables (the kernel mapping supervisor-only, one user
 * address space per process), a GDT with a TSS, an IDT; drives the 16550
 * console, the local APIC timer (preemption), the I/O APIC and a virtio-mmio
 * block device; and runs ring-3 processes with SYSCALL / INT 0x80 system
 * calls. A process that faults is killed and the fault reported. */
#include "abi.h"

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long u64;
typedef long i64;

#define NULL ((void *)0)

/* ------------------------------------------------------------------ basics */

void *memset(void *d, int c, u64 n) { u8 *p = d; while (n--) *p++ = (u8)c; return d; }
void *memcpy(void *d, const void *s, u64 n) { u8 *p = d; const u8 *q = s; while (n--) *p++ = *q++; return d; }
int memcmp(const void *a, const void *b, u64 n) {
    const u8 *p = a, *q = b;
    for (; n; n--, p++, q++) if (*p != *q) return *p - *q;
    return 0;
}
static int strncmp_(const char *a, const char *b, u64 n) {
    for (; n; n--, a++, b++) { if (*a != *b) return (u8)*a - (u8)*b; if (!*a) return 0; }
    return 0;
}

static inline void outb(u16 port, u8 v) { __asm__ volatile("outb %0, %1" :: "a"(v), "Nd"(port)); }
static inline u8 inb(u16 port) { u8 v; __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port)); return v; }
static inline u64 rdtsc(void) { u32 lo, hi; __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi)); return ((u64)hi << 32) | lo; }
static inline u64 rdmsr(u32 idx) { u32 lo, hi; __asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(idx)); return ((u64)hi << 32) | lo; }
static inline void wrmsr(u32 idx, u64 v) { __asm__ volatile("wrmsr" :: "c"(idx), "a"((u32)v), "d"((u32)(v >> 32)) : "memory"); }
static inline u64 read_cr2(void) { u64 v; __asm__ volatile("mov %%cr2, %0" : "=r"(v)); return v; }
static inline void write_cr3(u64 v) { __asm__ volatile("mov %0, %%cr3" :: "r"(v) : "memory"); }
static inline u64 read_cr4(void) { u64 v; __asm__ volatile("mov %%cr4, %0" : "=r"(v)); return v; }
static inline void write_cr4(u64 v) { __asm__ volatile("mov %0, %%cr4" :: "r"(v) : "memory"); }
static inline u64 read_cr0(void) { u64 v; __asm__ volatile("mov %%cr0, %0" : "=r"(v)); return v; }
static inline void write_cr0(u64 v) { __asm__ volatile("mov %0, %%cr0" :: "r"(v) : "memory"); }
static inline void mb(void) { __asm__ volatile("" ::: "memory"); }
static inline void post(u8 code) { outb(0x80, code); }     /* marker port: the VMM timestamps these */

/* ------------------------------------------------------------------ console (16550 at 0x3F8) */

#define COM1 0x3F8

static void uart_init(void) {
    outb(COM1 + 1, 0x00);     /* IER: no interrupts yet */
    outb(COM1 + 3, 0x80);     /* DLAB */
    outb(COM1 + 0, 0x01);     /* 115200 baud */
    outb(COM1 + 1, 0x00);
    outb(COM1 + 3, 0x03);     /* 8N1 */
    outb(COM1 + 2, 0x07);     /* FIFO on, cleared */
    outb(COM1 + 4, 0x0B);     /* DTR RTS OUT2 */
}

static void uart_putc(char c) {
    while (!(inb(COM1 + 5) & 0x20)) ;
    outb(COM1, (u8)c);
}

static void putc_(char c) { if (c == '\n') uart_putc('\r'); uart_putc(c); }
static void puts_n(const char *s, u64 n) { while (n--) putc_(*s++); }
static void puts_(const char *s) { while (*s) putc_(*s++); }

typedef __builtin_va_list va_list;
#define va_start __builtin_va_start
#define va_arg __builtin_va_arg
#define va_end __builtin_va_end

static void print_num(u64 v, int base, int width, char pad, int neg) {
    char t[24]; int k = 0;
    do { t[k++] = "0123456789abcdef"[v % base]; v /= base; } while (v);
    if (neg) t[k++] = '-';
    while (k < width) { putc_(pad); width--; }
    while (k) putc_(t[--k]);
}

static void kprintf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    for (; *fmt; fmt++) {
        if (*fmt != '%') { putc_(*fmt); continue; }
        fmt++;
        char pad = ' '; int width = 0, lng = 0;
        if (*fmt == '0') { pad = '0'; fmt++; }
        while (*fmt >= '0' && *fmt <= '9') width = width * 10 + (*fmt++ - '0');
        while (*fmt == 'l') { lng = 1; fmt++; }
        switch (*fmt) {
        case 'd': { i64 v = lng ? va_arg(ap, i64) : va_arg(ap, int); print_num(v < 0 ? -v : v, 10, width, pad, v < 0); break; }
        case 'u': print_num(lng ? va_arg(ap, u64) : va_arg(ap, u32), 10, width, pad, 0); break;
        case 'x': print_num(lng ? va_arg(ap, u64) : va_arg(ap, u32), 16, width, pad, 0); break;
        case 'p': puts_("0x"); print_num((u64)va_arg(ap, void *), 16, 0, ' ', 0); break;
        case 's': puts_(va_arg(ap, const char *)); break;
        case 'c': putc_((char)va_arg(ap, int)); break;
        case '%': putc_('%'); break;
        default: putc_('?');
        }
    }
    va_end(ap);
}

static void halt_forever(void) { for (;;) __asm__ volatile("cli; hlt"); }

#define panic(...) do { kprintf("PANIC: " __VA_ARGS__); halt_forever(); } while (0)

/* ------------------------------------------------------------------ boot parameters */

static const char *cmdline = "";
static u64 ram_top;

static const char *find_arg(const char *key) {
    u64 n = 0; while (key[n]) n++;
    for (const char *p = cmdline; *p; p++)
        if ((p == cmdline || p[-1] == ' ') && !strncmp_(p, key, n)) return p + n;
    return NULL;
}

static u64 parse_num(const char **pp) {
    const char *p = *pp; u64 v = 0;
    if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
        p += 2;
        for (;;) {
            char c = *p; int d;
            if (c >= '0' && c <= '9') d = c - '0';
            else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
            else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
            else break;
            v = v * 16 + d; p++;
        }
    } else {
        while (*p >= '0' && *p <= '9') v = v * 10 + (*p++ - '0');
    }
    if (*p == 'K' || *p == 'k') { v <<= 10; p++; }
    else if (*p == 'M' || *p == 'm') { v <<= 20; p++; }
    *pp = p;
    return v;
}

/* ------------------------------------------------------------------ physical pages */

extern char _end[], _kernel_start[], _etext[];
static u64 next_free;

static void *alloc_page(void) {
    u64 p = next_free;
    next_free += 4096;
    if (next_free > ram_top) panic("out of memory\n");
    memset((void *)p, 0, 4096);
    return (void *)p;
}

/* ------------------------------------------------------------------ paging */

#define PTE_P 1ULL
#define PTE_W 2ULL
#define PTE_U 4ULL
#define PTE_PWT 8ULL
#define PTE_PCD 16ULL
#define PTE_PS 0x80ULL
#define PTE_G 0x100ULL
#define PTE_NX (1ULL << 63)
#define PTE_ADDR 0x000ffffffffff000ULL

#define LAPIC_BASE 0xFEE00000ULL
#define IOAPIC_BASE 0xFEC00000ULL

static u64 *kernel_pdpt;          /* shared by every address space: PML4[0], supervisor only */
static u64 kernel_pml4;

static void map_2m(u64 *pd_tables[4], u64 addr, u64 flags) {
    pd_tables[addr >> 30][(addr >> 21) & 511] = (addr & ~0x1FFFFFULL) | PTE_P | PTE_PS | flags;
}

static void paging_init(u64 mmio_extra, u64 mmio_extra2) {
    u64 *pml4 = alloc_page();
    kernel_pdpt = alloc_page();
    u64 *pd[4];
    for (int i = 0; i < 4; i++) {
        pd[i] = alloc_page();
        kernel_pdpt[i] = (u64)pd[i] | PTE_P | PTE_W;
    }
    /* RAM: supervisor only; only the 2 MiB page holding the kernel's text is executable.
       The kernel half is the same in every address space: global, so a CR3 load keeps it */
    for (u64 a = 0; a < ram_top && a < (3ULL << 30); a += 2 << 20)
        map_2m(pd, a, PTE_W | PTE_G | (a == ((u64)_kernel_start & ~0x1FFFFFULL) ? 0 : PTE_NX));
    map_2m(pd, LAPIC_BASE, PTE_W | PTE_G | PTE_PCD | PTE_PWT | PTE_NX);
    map_2m(pd, IOAPIC_BASE, PTE_W | PTE_G | PTE_PCD | PTE_PWT | PTE_NX);
    if (mmio_extra) map_2m(pd, mmio_extra, PTE_W | PTE_G | PTE_PCD | PTE_PWT | PTE_NX);
    if (mmio_extra2) map_2m(pd, mmio_extra2, PTE_W | PTE_G | PTE_PCD | PTE_PWT | PTE_NX);
    pml4[0] = (u64)kernel_pdpt | PTE_P | PTE_W;
    kernel_pml4 = (u64)pml4;

    wrmsr(0xC0000080, rdmsr(0xC0000080) | (1 << 11) | 1);   /* EFER.NXE, EFER.SCE */
    write_cr4(read_cr4() | (1 << 20) | (1 << 7));             /* SMEP, PGE */
    write_cr0(read_cr0() | (1 << 16));                        /* WP */
    write_cr3(kernel_pml4);
}

/* ------------------------------------------------------------------ GDT, TSS, IDT */

struct tss {
    u32 reserved0;
    u64 rsp[3];
    u64 reserved1;
    u64 ist[7];
    u64 reserved2;
    u16 reserved3;
    u16 iopb;
} __attribute__((packed));

static struct tss tss;
static u64 gdt[8];
extern char df_stack_top[];

#define KCODE 0x10
#define KDATA 0x18
#define UDATA 0x23
#define UCODE 0x2b
#define TSS_SEL 0x30

static void gdt_init(void) {
    gdt[0] = 0;
    gdt[1] = 0;
    gdt[2] = 0x00af9a000000ffffULL;    /* 0x10 kernel code, 64-bit */
    gdt[3] = 0x00cf92000000ffffULL;    /* 0x18 kernel data */
    gdt[4] = 0x00cff2000000ffffULL;    /* 0x20 user data (DPL 3) */
    gdt[5] = 0x00affa000000ffffULL;    /* 0x28 user code, 64-bit (DPL 3) */
    u64 base = (u64)&tss, limit = sizeof(tss) - 1;
    gdt[6] = (limit & 0xFFFF) | ((base & 0xFFFFFF) << 16) | (0x89ULL << 40) | (((base >> 24) & 0xFF) << 56);
    gdt[7] = base >> 32;
    tss.iopb = sizeof(tss);            /* no I/O bitmap */
    tss.ist[0] = (u64)df_stack_top;
    struct { u16 limit; u64 base; } __attribute__((packed)) d = { sizeof(gdt) - 1, (u64)gdt };
    __asm__ volatile("lgdt %0" :: "m"(d));
    /* CS/DS/SS already hold 0x10/0x18 (the boot protocol's selectors, same descriptors here) */
    __asm__ volatile("ltr %w0" :: "r"((u16)TSS_SEL));
}

struct idt_gate { u16 off0, sel; u8 ist, type; u16 off1; u32 off2, zero; } __attribute__((packed));
static struct idt_gate idt[256];

static void set_gate(int v, void (*fn)(void), int dpl, int ist) {
    u64 a = (u64)fn;
    idt[v].off0 = a & 0xFFFF;
    idt[v].sel = KCODE;
    idt[v].ist = ist;
    idt[v].type = 0x8E | (dpl << 5);      /* present, interrupt gate */
    idt[v].off1 = (a >> 16) & 0xFFFF;
    idt[v].off2 = a >> 32;
    idt[v].zero = 0;
}

#define V(n) extern void vec##n(void);
V(0) V(1) V(2) V(3) V(4) V(5) V(6) V(7) V(8) V(9) V(10) V(11) V(12) V(13) V(14) V(15)
V(16) V(17) V(18) V(19) V(20) V(21) V(32) V(36) V(37) V(38) V(128) V(129) V(255)
extern void syscall_entry(void);

#define VEC_TIMER 32
#define VEC_UART 36
#define VEC_VIRTIO 37
#define VEC_ACCEL 38
#define VEC_SPURIOUS 255

static void idt_init(void) {
    void (*exc[22])(void) = { vec0, vec1, vec2, vec3, vec4, vec5, vec6, vec7, vec8, vec9, vec10,
                              vec11, vec12, vec13, vec14, vec15, vec16, vec17, vec18, vec19, vec20, vec21 };
    for (int i = 0; i < 22; i++) set_gate(i, exc[i], i == 3 ? 3 : 0, i == 8 || i == 2 ? 1 : 0);
    set_gate(VEC_TIMER, vec32, 0, 0);
    set_gate(VEC_UART, vec36, 0, 0);
    set_gate(VEC_VIRTIO, vec37, 0, 0);
    set_gate(VEC_ACCEL, vec38, 0, 0);
    set_gate(0x80, vec128, 3, 0);
    set_gate(0x81, vec129, 3, 0);
    set_gate(VEC_SPURIOUS, vec255, 0, 0);
    struct { u16 limit; u64 base; } __attribute__((packed)) d = { sizeof(idt) - 1, (u64)idt };
    __asm__ volatile("lidt %0" :: "m"(d));
}

/* ------------------------------------------------------------------ APICs */

static int x2apic;           /* registers through MSRs 0x800+ instead of MMIO */
static int timer_mode;       /* 0 periodic, 1 one-shot (re-armed per tick), 2 TSC-deadline */
static const char *timer_mode_names[3] = { "periodic", "one-shot", "TSC-deadline" };

static inline u32 lapic_r(u32 off) {
    if (x2apic) return (u32)rdmsr(0x800 + (off >> 4));
    return *(volatile u32 *)(LAPIC_BASE + off);
}
static inline void lapic_w(u32 off, u32 v) {
    if (x2apic) wrmsr(0x800 + (off >> 4), v);
    else *(volatile u32 *)(LAPIC_BASE + off) = v;
}
static inline void lapic_eoi(void) { lapic_w(0xB0, 0); }

static void ioapic_route(int pin, int vector) {
    *(volatile u32 *)(IOAPIC_BASE) = 0x10 + 2 * pin + 1;
    *(volatile u32 *)(IOAPIC_BASE + 0x10) = 0;                 /* destination: APIC 0 */
    *(volatile u32 *)(IOAPIC_BASE) = 0x10 + 2 * pin;
    *(volatile u32 *)(IOAPIC_BASE + 0x10) = vector;            /* fixed, physical, edge, high, unmasked */
}

#define TICK_CYCLES 100000

static void cpuid(u32 leaf, u32 *a, u32 *b, u32 *c, u32 *d) {
    __asm__ volatile("cpuid" : "=a"(*a), "=b"(*b), "=c"(*c), "=d"(*d) : "a"(leaf), "c"(0));
}

static void timer_rearm(void) {
    if (timer_mode == 1) lapic_w(0x380, TICK_CYCLES);
    else if (timer_mode == 2) wrmsr(0x6E0, rdtsc() + TICK_CYCLES);
}

static void apic_init(void) {
    u32 a, b, c, d;
    cpuid(1, &a, &b, &c, &d);
    if (find_arg("x2apic") && (c & (1 << 21))) {
        wrmsr(0x1B, rdmsr(0x1B) | (1 << 10) | (1 << 11));   /* IA32_APIC_BASE: EN + EXTD */
        x2apic = 1;
    }
    const char *tm = find_arg("timer=");
    if (tm && !strncmp_(tm, "oneshot", 7)) timer_mode = 1;
    if (tm && !strncmp_(tm, "deadline", 8) && (c & (1 << 24))) timer_mode = 2;
    lapic_w(0xF0, 0x100 | VEC_SPURIOUS);        /* software enable, spurious vector */
    lapic_w(0x80, 0);                           /* TPR */
    lapic_w(0x3E0, 0xB);                        /* divide by 1 */
    lapic_w(0x320, VEC_TIMER | ((timer_mode == 0 ? 1 : timer_mode == 2 ? 2 : 0) << 17));
    if (timer_mode == 2) timer_rearm();
    else lapic_w(0x380, TICK_CYCLES);
    u32 ver = lapic_r(0x30);
    *(volatile u32 *)IOAPIC_BASE = 1;
    u32 iover = *(volatile u32 *)(IOAPIC_BASE + 0x10);
    kprintf("apic: local APIC id %u version 0x%x, I/O APIC version 0x%x with %u pins, timer every %u cycles\n",
            lapic_r(0x20) >> (x2apic ? 0 : 24), ver & 0xFF, iover & 0xFF, ((iover >> 16) & 0xFF) + 1, TICK_CYCLES);
    kprintf("apic: %s, timer mode %s\n", x2apic ? "x2APIC (MSRs)" : "xAPIC (MMIO)", timer_mode_names[timer_mode]);
}

/* ------------------------------------------------------------------ virtio-mmio block */

#define VQ_SIZE 8
struct vq_desc { u64 addr; u32 len; u16 flags, next; };
struct vq_avail { u16 flags, idx, ring[VQ_SIZE], used_event; };
struct vq_used_elem { u32 id, len; };
struct vq_used { u16 flags, idx; struct vq_used_elem ring[VQ_SIZE]; u16 avail_event; };
struct blk_req { u32 type, reserved; u64 sector; };

static volatile u8 *vio;
static int vio_irq;
static struct vq_desc *vq_desc;
static volatile struct vq_avail *vq_avail;
static volatile struct vq_used *vq_used;
static u16 vq_last_used;
static u64 blk_capacity;
static struct blk_req blk_hdr;
static volatile u8 blk_status;
static volatile u64 virtio_irqs;

static inline u32 vr(u32 off) { return *(volatile u32 *)(vio + off); }
static inline void vw(u32 off, u32 v) { *(volatile u32 *)(vio + off) = v; }

static int virtio_init(u64 base, int irq) {
    vio = (volatile u8 *)base;
    vio_irq = irq;
    if (vr(0) != 0x74726976 || vr(4) != 2 || vr(8) != 2) {
        kprintf("virtio: no modern block device at 0x%lx\n", base);
        return -1;
    }
    vw(0x70, 0);                               /* reset */
    vw(0x70, 1);                               /* ACKNOWLEDGE */
    vw(0x70, 1 | 2);                           /* DRIVER */
    vw(0x14, 1);
    u32 f1 = vr(0x10);
    if (!(f1 & 1)) { kprintf("virtio: device lacks VIRTIO_F_VERSION_1\n"); return -1; }
    vw(0x24, 0); vw(0x20, 0);
    vw(0x24, 1); vw(0x20, 1);                  /* VERSION_1 only */
    vw(0x70, 1 | 2 | 8);                       /* FEATURES_OK */
    if (!(vr(0x70) & 8)) { kprintf("virtio: features refused\n"); return -1; }
    vw(0x30, 0);
    if (vr(0x34) < VQ_SIZE) { kprintf("virtio: queue too small\n"); return -1; }
    vw(0x38, VQ_SIZE);
    u8 *q = alloc_page();
    u8 *u = alloc_page();
    vq_desc = (struct vq_desc *)q;
    vq_avail = (struct vq_avail *)(q + 2048);
    vq_used = (struct vq_used *)u;
    vw(0x80, (u32)(u64)q); vw(0x84, (u64)q >> 32);
    vw(0x90, (u32)(u64)vq_avail); vw(0x94, (u64)vq_avail >> 32);
    vw(0xA0, (u32)(u64)u); vw(0xA4, (u64)u >> 32);
    vw(0x44, 1);                               /* queue ready */
    vw(0x70, 1 | 2 | 8 | 4);                   /* DRIVER_OK */
    blk_capacity = vr(0x100) | ((u64)vr(0x104) << 32);
    ioapic_route(irq, VEC_VIRTIO);
    kprintf("virtio-blk: %lu sectors (%lu KiB) at 0x%lx irq %d\n", blk_capacity, blk_capacity / 2, base, irq);
    return 0;
}

/* one request, waits for its completion interrupt */
static int blk_rw(int write, u64 sector, void *buf, u32 count) {
    blk_hdr.type = write ? 1 : 0;
    blk_hdr.reserved = 0;
    blk_hdr.sector = sector;
    blk_status = 0xFF;
    vq_desc[0] = (struct vq_desc){ (u64)&blk_hdr, sizeof(blk_hdr), 1, 1 };
    vq_desc[1] = (struct vq_desc){ (u64)buf, count * 512, (u16)(1 | (write ? 0 : 2)), 2 };
    vq_desc[2] = (struct vq_desc){ (u64)&blk_status, 1, 2, 0 };
    vq_avail->ring[vq_avail->idx % VQ_SIZE] = 0;
    mb();
    vq_avail->idx++;
    mb();
    u64 irqs = virtio_irqs;
    vw(0x50, 0);                               /* notify queue 0 */
    while (vq_used->idx == vq_last_used || virtio_irqs == irqs)
        __asm__ volatile("sti; hlt; cli" ::: "memory");   /* the completion interrupt wakes us */
    vq_last_used++;
    return blk_status == 0 ? 0 : -1;
}

static u32 fnv1a(const u8 *p, u64 n) {
    u32 h = 0x811c9dc5;
    while (n--) { h ^= *p++; h *= 16777619; }
    return h;
}

#define DISK_BUF_MAX (64 * 1024)

static void disk_test(void) {
    static u8 sec[512] __attribute__((aligned(512)));
    if (blk_rw(0, 0, sec, 1)) { kprintf("disk: read error\n"); return; }
    if (memcmp(sec, "EMUDISK\0", 8)) { kprintf("disk: no test file (bad magic)\n"); return; }
    u32 len = *(u32 *)(sec + 8);
    if (len > DISK_BUF_MAX || 1 + (len + 511) / 512 > blk_capacity) { kprintf("disk: bad length %u\n", len); return; }
    u8 *buf = alloc_page();
    for (int i = 1; i < DISK_BUF_MAX / 4096; i++) alloc_page();     /* contiguous after buf */
    u32 nsec = (len + 511) / 512;
    for (u32 s = 0; s < nsec; s += 8) {
        u32 k = nsec - s < 8 ? nsec - s : 8;
        if (blk_rw(0, 1 + s, buf + 512 * s, k)) { kprintf("disk: read error at sector %u\n", 1 + s); return; }
    }
    kprintf("disk: test file %u bytes, fnv1a 0x%08x\n", len, fnv1a(buf, len));
    u32 n = 0;
    while (n < len && n < 100 && buf[n] != '\n') n++;
    kprintf("disk: first line: ");
    puts_n((const char *)buf, n);
    putc_('\n');
    /* write a sector at the end of the disk and read it back */
    u64 last = blk_capacity - 1;
    memset(sec, 0, 512);
    const char *msg = "written by the emu guest kernel\n";
    memcpy(sec, msg, 32);
    *(u32 *)(sec + 32) = fnv1a(buf, len);
    if (blk_rw(1, last, sec, 1)) { kprintf("disk: write error\n"); return; }
    memset(sec, 0, 512);
    if (blk_rw(0, last, sec, 1) || memcmp(sec, msg, 32)) { kprintf("disk: read-back mismatch\n"); return; }
    kprintf("disk: wrote and read back sector %lu (%lu interrupts)\n", last, virtio_irqs);
}

/* ------------------------------------------------------------------ compute accelerator (emu/vm/accel.py) */

/* the command descriptor the device reads from guest RAM (64 bytes) */
struct accel_cmd { u32 op, status, m, n, k, lda, ldb, ldc; u64 a, b, c, result; };
#define ACC_GEMM_I32 1
#define ACC_GEMM_F32 2
#define ACC_VADD_I32 3
#define ACC_DOT_I32 5

static volatile u8 *acc;
static volatile u64 accel_irqs;
static inline u32 ar(u32 off) { return *(volatile u32 *)(acc + off); }
static inline void aw(u32 off, u32 v) { *(volatile u32 *)(acc + off) = v; }

static int accel_init(u64 base, int irq) {
    acc = (volatile u8 *)base;
    if (ar(0) != 0x4C434341 || ar(4) != 1) { kprintf("accel: no accelerator at 0x%lx\n", base); return -1; }
    ioapic_route(irq, VEC_ACCEL);
    kprintf("accel: compute accelerator at 0x%lx irq %d, ops 0x%x, max dim %u\n", base, irq, ar(8), ar(0xC));
    return 0;
}

/* ring the doorbell with the descriptor's physical address (identity-mapped)
   and wait for the completion interrupt; the device's status */
static u32 accel_submit(u64 desc) {
    u64 irqs = accel_irqs;
    mb();
    aw(0x14, (u32)(desc >> 32));
    aw(0x10, (u32)desc);
    while (accel_irqs == irqs)
        __asm__ volatile("sti; hlt; cli" ::: "memory");
    mb();
    return ar(0x18);
}

static u32 lcg_state;
static u32 lcg(void) { lcg_state = lcg_state * 1664525u + 1013904223u; return lcg_state; }

static void *alloc_pages(u64 bytes) {
    u8 *p = alloc_page();
    for (u64 off = 4096; off < bytes; off += 4096) alloc_page();     /* contiguous after p */
    return p;
}

static u32 fnv1a(const u8 *p, u64 n);

/* exact conversions between small integers and IEEE single bits, in integer code
   (the kernel is built without FPU/SSE registers) */
static u32 int_to_f32(int v) {
    if (!v) return 0;
    u32 sign = v < 0 ? 0x80000000u : 0, a = v < 0 ? (u32)-v : (u32)v;
    int e = 31;
    while (!(a >> e)) e--;
    u32 mant = e <= 23 ? a << (23 - e) : a >> (e - 23);
    return sign | ((u32)(e + 127) << 23) | (mant & 0x7FFFFF);
}
static int f32_to_int(u32 f, int *ok) {
    if (!(f & 0x7FFFFFFF)) return 0;
    int e = (int)((f >> 23) & 0xFF) - 127;
    u32 mant = (f & 0x7FFFFF) | 0x800000, a;
    if (e < 0 || e > 30) { *ok = 0; return 0; }
    if (e <= 23) {
        if (mant & ((1u << (23 - e)) - 1)) *ok = 0;
        a = mant >> (23 - e);
    } else a = mant << (e - 23);
    return f >> 31 ? -(int)a : (int)a;
}

static const char *accel_status_name(u32 s) {
    switch (s) {
    case 0: return "ok";
    case 2: return "bad address";
    case 3: return "bad opcode";
    case 4: return "bad arguments";
    case 5: return "too big";
    }
    return "?";
}

#define GM 64
#define GN 48
#define GK 32
#define LDA (GK + 3)
#define LDC (GN + 5)
#define FD 32
#define VN 1000

static void accel_test(void) {
    static struct accel_cmd cmd __attribute__((aligned(64)));
    int errs = 0;
    /* int32 GEMM: C[GM x GN] = A[GM x GK] x B[GK x GN]; A and C with padded rows */
    u32 *A = alloc_pages(GM * LDA * 4), *B = alloc_pages(GK * GN * 4);
    u32 *C = alloc_pages(GM * LDC * 4), *R = alloc_pages(GM * GN * 4);
    lcg_state = 12345;
    for (int i = 0; i < GM * LDA; i++) A[i] = lcg();
    for (int i = 0; i < GK * GN; i++) B[i] = lcg();
    for (int i = 0; i < GM * LDC; i++) C[i] = 0xCCCCCCCC;
    post(0x20);                                     /* markers: the VMM timestamps them (perf/bench_accel.py) */
    u64 t0 = rdtsc();
    for (int i = 0; i < GM; i++)
        for (int j = 0; j < GN; j++) {
            u32 s = 0;                              /* wraps around, as int32 on the device */
            for (int l = 0; l < GK; l++) s += A[i * LDA + l] * B[l * GN + j];
            R[i * GN + j] = s;
        }
    u64 t1 = rdtsc();
    post(0x21);
    cmd = (struct accel_cmd){ ACC_GEMM_I32, 0xFFFFFFFF, GM, GN, GK, LDA, GN, LDC, (u64)A, (u64)B, (u64)C, 0 };
    u32 st = accel_submit((u64)&cmd);
    u64 t2 = rdtsc();
    post(0x22);
    int same = st == 0 && cmd.status == 0, pad = 1;
    for (int i = 0; i < GM; i++) {
        for (int j = 0; j < GN; j++) if (C[i * LDC + j] != R[i * GN + j]) same = 0;
        for (int j = GN; j < LDC; j++) if (C[i * LDC + j] != 0xCCCCCCCC) pad = 0;
    }
    errs += !same || !pad;
    kprintf("accel: gemm i32 %dx%dx%d %s checksum 0x%08x\n", GM, GN, GK,
            same && pad ? "ok" : same ? "MISMATCH (row padding written)" : "MISMATCH", fnv1a((u8 *)R, GM * GN * 4));
    kprintf("accel: gemm i32 on the guest cpu %lu cycles, on the accelerator %lu cycles\n", t1 - t0, t2 - t1);

    /* float32 GEMM on small integers: every sum is exact, whatever the order */
    u32 *FA = alloc_pages(FD * FD * 4), *FB = alloc_pages(FD * FD * 4), *FC = alloc_pages(FD * FD * 4);
    int *FR = alloc_pages(FD * FD * 4);
    static int fa[FD * FD], fb[FD * FD];
    for (int i = 0; i < FD * FD; i++) { fa[i] = (int)(lcg() >> 28) - 8; FA[i] = int_to_f32(fa[i]); }
    for (int i = 0; i < FD * FD; i++) { fb[i] = (int)(lcg() >> 28) - 8; FB[i] = int_to_f32(fb[i]); }
    for (int i = 0; i < FD; i++)
        for (int j = 0; j < FD; j++) {
            int s = 0;
            for (int l = 0; l < FD; l++) s += fa[i * FD + l] * fb[l * FD + j];
            FR[i * FD + j] = s;
        }
    cmd = (struct accel_cmd){ ACC_GEMM_F32, 0xFFFFFFFF, FD, FD, FD, 0, 0, 0, (u64)FA, (u64)FB, (u64)FC, 0 };
    post(0x23);
    st = accel_submit((u64)&cmd);
    post(0x24);
    int ok = 1;
    same = st == 0;
    for (int i = 0; i < FD * FD; i++) if (f32_to_int(FC[i], &ok) != FR[i]) same = 0;
    errs += !(same && ok);
    kprintf("accel: gemm f32 %dx%dx%d %s checksum 0x%08x\n", FD, FD, FD, same && ok ? "ok" : "MISMATCH",
            fnv1a((u8 *)FC, FD * FD * 4));

    /* vectors: int32 add (wrapping) and dot product */
    u32 *X = alloc_pages(VN * 4), *Y = alloc_pages(VN * 4), *Z = alloc_pages(VN * 4);
    for (int i = 0; i < VN; i++) { X[i] = lcg(); Y[i] = lcg(); }
    cmd = (struct accel_cmd){ ACC_VADD_I32, 0xFFFFFFFF, 0, VN, 0, 0, 0, 0, (u64)X, (u64)Y, (u64)Z, 0 };
    st = accel_submit((u64)&cmd);
    same = st == 0;
    for (int i = 0; i < VN; i++) if (Z[i] != X[i] + Y[i]) same = 0;
    errs += !same;
    kprintf("accel: vadd i32 %d %s checksum 0x%08x\n", VN, same ? "ok" : "MISMATCH", fnv1a((u8 *)Z, VN * 4));
    u64 dot = 0;
    for (int i = 0; i < VN; i++) dot += (u64)((i64)(int)X[i] * (i64)(int)Y[i]);
    cmd = (struct accel_cmd){ ACC_DOT_I32, 0xFFFFFFFF, 0, VN, 0, 0, 0, 0, (u64)X, (u64)Y, 0, 0 };
    st = accel_submit((u64)&cmd);
    same = st == 0 && cmd.result == dot;
    errs += !same;
    kprintf("accel: dot i32 %d %s result 0x%lx\n", VN, same ? "ok" : "MISMATCH", cmd.result);

    /* bad descriptors: each completes with an error status, nothing is written */
    for (int i = 0; i < GM * LDC; i++) C[i] = 0xCCCCCCCC;
    cmd = (struct accel_cmd){ ACC_GEMM_I32, 0xFFFFFFFF, GM, GN, GK, LDA, GN, LDC, ram_top + 0x100000, (u64)B, (u64)C, 0 };
    st = accel_submit((u64)&cmd);
    int untouched = 1;
    for (int i = 0; i < GM * LDC; i++) if (C[i] != 0xCCCCCCCC) untouched = 0;
    kprintf("accel: bad descriptor (A beyond RAM): status %u (%s), %s\n", st, accel_status_name(st),
            untouched && cmd.status == st ? "C untouched" : "C WRITTEN");
    cmd.a = (u64)A;
    cmd.c = ram_top - 4096;                         /* C starts in RAM and runs past its end */
    st = accel_submit((u64)&cmd);
    kprintf("accel: bad descriptor (C crosses the end of RAM): status %u (%s)\n", st, accel_status_name(st));
    cmd.c = 0xFFFFFFFFFFFFF000ULL;                  /* address + length wraps around */
    st = accel_submit((u64)&cmd);
    kprintf("accel: bad descriptor (C address + length wraps): status %u (%s)\n", st, accel_status_name(st));
    st = accel_submit(ram_top + 0x2000);            /* the descriptor itself outside RAM */
    kprintf("accel: descriptor beyond RAM: status %u (%s)\n", st, accel_status_name(st));
    cmd.op = 99;
    st = accel_submit((u64)&cmd);
    kprintf("accel: unknown command: status %u (%s)\n", st, accel_status_name(st));
    kprintf("accel: %u commands, %u errors, %lu interrupts; %s\n", ar(0x20), ar(0x24), accel_irqs,
            errs ? "RESULTS DIFFER" : "all results equal the cpu's");
}

/* ------------------------------------------------------------------ processes */

struct trapframe {
    u64 r15, r14, r13, r12, r11, r10, r9, r8, rbp, rdi, rsi, rdx, rcx, rbx, rax;
    u64 vector, err, rip, cs, rflags, rsp, ss;
};

enum { UNUSED, RUNNABLE, RUNNING, SLEEPING, DEAD };
#define NPROC 24
#define KSTACK_PAGES 2

struct proc {
    int pid, state, killed;
    const char *name;
    u64 pml4;
    u64 *pt;              /* the page table for [USER_BASE, USER_BASE + 2 MiB) */
    u64 kstack_top;
    u64 ctx;              /* saved kernel RSP (swtch) */
    u64 wake;
    u64 data_phys;
    int status;
};

static struct proc procs[NPROC];
static struct proc *cur;
static u64 sched_ctx;
u64 cur_kstack_top;       /* used by syscall_entry */
u64 user_rsp_scratch;
static volatile u64 ticks;
static u64 n_preempt, n_switch;
static int n_exited, n_killed;

extern void swtch(u64 *save, u64 next);
extern void trapret(void);
extern char user_image[], user_image_end[];

static void map_user(struct proc *p, u64 va, u64 pa, u64 flags) {
    p->pt[(va >> 12) & 511] = pa | PTE_P | PTE_U | flags;
}

static struct proc *spawn(const char *name, long prog, u64 arg) {
    struct proc *p = NULL;
    for (int i = 0; i < NPROC; i++) if (procs[i].state == UNUSED) { p = &procs[i]; break; }
    if (!p) panic("too many processes\n");
    p->pid = (int)(p - procs) + 1;
    p->name = name;
    p->killed = 0;
    /* address space: PML4[0] is the kernel (supervisor), PML4[1] this process's user space */
    u64 *pml4 = alloc_page();
    u64 *pdpt = alloc_page();
    u64 *pd = alloc_page();
    p->pt = alloc_page();
    pml4[0] = (u64)kernel_pdpt | PTE_P | PTE_W;
    pml4[1] = (u64)pdpt | PTE_P | PTE_W | PTE_U;
    pdpt[0] = (u64)pd | PTE_P | PTE_W | PTE_U;
    pd[0] = (u64)p->pt | PTE_P | PTE_W | PTE_U;
    p->pml4 = (u64)pml4;
    /* the program image: read + execute */
    u64 size = user_image_end - user_image;
    for (u64 off = 0; off < size; off += 4096) {
        u8 *pg = alloc_page();
        memcpy(pg, user_image + off, size - off < 4096 ? size - off : 4096);
        map_user(p, USER_CODE + off, (u64)pg, 0);
    }
    /* data page and stack: read + write, no execute */
    u8 *data = alloc_page();
    p->data_phys = (u64)data;
    map_user(p, USER_DATA, (u64)data, PTE_W | PTE_NX);
    for (int i = 1; i <= USER_STACK_PAGES; i++)
        map_user(p, USER_STACK_TOP - 4096 * i, (u64)alloc_page(), PTE_W | PTE_NX);
    /* kernel stack: a trapframe to enter ring 3, below it swtch's frame returning to trapret */
    u8 *ks = alloc_page();
    for (int i = 1; i < KSTACK_PAGES; i++) alloc_page();
    p->kstack_top = (u64)ks + KSTACK_PAGES * 4096;
    struct trapframe *tf = (struct trapframe *)(p->kstack_top - sizeof(*tf));
    memset(tf, 0, sizeof(*tf));
    tf->rip = USER_CODE;
    tf->cs = UCODE;
    tf->ss = UDATA;
    tf->rsp = USER_STACK_TOP - 8;
    tf->rflags = 0x202;
    tf->rdi = prog;
    tf->rsi = arg;
    u64 *sp = (u64 *)tf;
    *--sp = (u64)trapret;
    for (int i = 0; i < 6; i++) *--sp = 0;
    p->ctx = (u64)sp;
    p->state = RUNNABLE;
    return p;
}

static void yield(void) {
    struct proc *p = cur;
    if (p->state == RUNNING) p->state = RUNNABLE;
    swtch(&p->ctx, sched_ctx);
}

static void proc_exit(int status) {
    cur->state = DEAD;
    cur->status = status;
    n_exited++;
    kprintf("process %d (%s) exited with status %d\n", cur->pid, cur->name, status);
    swtch(&cur->ctx, sched_ctx);
    panic("dead process resumed\n");
}

static const char *exc_names[32] = {
    "#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "CSO", "#TS", "#NP", "#SS", "#GP", "#PF", "#15",
    "#MF", "#AC", "#MC", "#XM", "#VE", "#CP",
};

static void kill_current(struct trapframe *tf) {
    if (tf->vector == 14)
        kprintf("process %d (%s) killed: #PF at 0x%lx error 0x%lx rip 0x%lx\n",
                cur->pid, cur->name, read_cr2(), tf->err, tf->rip);
    else
        kprintf("process %d (%s) killed: %s error 0x%lx rip 0x%lx\n",
                cur->pid, cur->name, exc_names[tf->vector], tf->err, tf->rip);
    cur->state = DEAD;
    cur->status = -1;
    n_killed++;
    swtch(&cur->ctx, sched_ctx);
    panic("killed process resumed\n");
}

/* the pages [va, va+len) are present user pages of the current process */
static int user_range_ok(u64 va, u64 len, int write) {
    if (va < USER_BASE || va + len < va || va + len > USER_LIMIT) return 0;
    for (u64 a = va & ~0xFFFULL; a < va + len; a += 4096) {
        u64 e = cur->pt[(a >> 12) & 511];
        if (!(e & PTE_P) || !(e & PTE_U) || (write && !(e & PTE_W))) return 0;
    }
    return 1;
}

static i64 do_syscall(struct trapframe *tf) {
    switch (tf->rax) {
    case SYS_WRITE:
        if (tf->rsi > 4096 || !user_range_ok(tf->rdi, tf->rsi, 0)) return -14;   /* EFAULT */
        puts_n((const char *)tf->rdi, tf->rsi);
        return tf->rsi;
    case SYS_EXIT:
        proc_exit((int)tf->rdi);
        return 0;
    case SYS_YIELD:
        yield();
        return 0;
    case SYS_GETPID:
        return cur->pid;
    case SYS_SLEEP:
        cur->wake = ticks + tf->rdi;
        cur->state = SLEEPING;
        yield();
        return 0;
    case SYS_TICKS:
        return ticks;
    }
    return -38;   /* ENOSYS */
}

/* wrmsr_safe (entry.S): a #GP on its WRMSR resumes at wrmsr_fixup */
extern int wrmsr_safe(u32 idx, u64 v);
extern char wrmsr_insn[], wrmsr_fixup[];

void trap(struct trapframe *tf) {
    u64 v = tf->vector;
    int from_user = (tf->cs & 3) == 3;
    if (v == 0x100 || v == 0x80) {
        tf->rax = do_syscall(tf);
        return;
    }
    if (v == 0x81) return;                          /* the interrupt benchmark's empty handler */
    if (v == VEC_TIMER) {
        ticks++;
        timer_rearm();
        for (int i = 0; i < NPROC; i++)
            if (procs[i].state == SLEEPING && procs[i].wake <= ticks) procs[i].state = RUNNABLE;
        lapic_eoi();
        if (from_user && cur) { n_preempt++; yield(); }
        return;
    }
    if (v == VEC_UART) {
        while (inb(COM1 + 5) & 1) {
            u8 c = inb(COM1);
            kprintf("console: got key 0x%x\n", c);
        }
        lapic_eoi();
        return;
    }
    if (v == VEC_VIRTIO) {
        u32 s = vr(0x60);
        vw(0x64, s);
        virtio_irqs++;
        lapic_eoi();
        return;
    }
    if (v == VEC_ACCEL) {
        aw(0x1C, ar(0x1C));                         /* acknowledge: the line drops */
        accel_irqs++;
        lapic_eoi();
        return;
    }
    if (v == VEC_SPURIOUS) return;
    if (v < 32) {
        if (from_user && cur) kill_current(tf);
        if (v == 13 && tf->rip == (u64)wrmsr_insn) { tf->rip = (u64)wrmsr_fixup; return; }
        kprintf("kernel fault: %s error 0x%lx rip 0x%lx cr2 0x%lx\n", exc_names[v], tf->err, tf->rip, read_cr2());
        halt_forever();
    }
    kprintf("unexpected vector %lu\n", v);
}

static u64 cur_cr3;

static void schedule(void) {
    int last = -1;
    for (;;) {
        struct proc *p = NULL;
        int live = 0;
        for (int i = 0; i < NPROC; i++)
            if (procs[i].state == RUNNABLE || procs[i].state == SLEEPING || procs[i].state == RUNNING) live++;
        if (!live) return;
        for (int k = 1; k <= NPROC; k++) {
            int i = (last + k) % NPROC;
            if (procs[i].state == RUNNABLE) { p = &procs[i]; last = i; break; }
        }
        if (!p) {
            __asm__ volatile("sti; hlt; cli" ::: "memory");      /* idle until an interrupt */
            continue;
        }
        cur = p;
        p->state = RUNNING;
        tss.rsp[0] = p->kstack_top;
        cur_kstack_top = p->kstack_top;
        if (p->pml4 != cur_cr3) { write_cr3(p->pml4); cur_cr3 = p->pml4; }
        n_switch++;
        swtch(&sched_ctx, p->ctx);
        cur = NULL;             /* the scheduler runs on the last process's tables: the kernel half is shared */
    }
}

/* ------------------------------------------------------------------ main */

void kmain(u8 *bp) {
    post(1);
    uart_init();
    puts_("emu kernel: hello from the guest\n");
    cmdline = (const char *)(u64)*(u32 *)(bp + 0x228);
    int n = bp[0x1E8];
    for (int i = 0; i < n; i++) {
        u8 *e = bp + 0x2D0 + 20 * i;
        u64 addr = *(u64 *)e, size = *(u64 *)(e + 8);
        u32 type = *(u32 *)(e + 16);
        kprintf("e820: [0x%lx-0x%lx] %s\n", addr, addr + size - 1, type == 1 ? "usable" : "reserved");
        if (type == 1 && addr + size > ram_top) ram_top = addr + size;
    }
    kprintf("cmdline: %s\n", cmdline);
    kprintf("memory: %lu MiB\n", ram_top >> 20);

    u64 vbase = 0; int virq = 0;
    const char *vd = find_arg("virtio_mmio.device=");
    if (vd) {
        parse_num(&vd);
        if (*vd == '@') { vd++; vbase = parse_num(&vd); }
        if (*vd == ':') { vd++; virq = (int)parse_num(&vd); }
    }

    u64 abase = 0; int airq = 0;
    const char *ad = find_arg("emu_accel=");
    if (ad) {
        parse_num(&ad);
        if (*ad == '@') { ad++; abase = parse_num(&ad); }
        if (*ad == ':') { ad++; airq = (int)parse_num(&ad); }
    }

    next_free = ((u64)_end + 4095) & ~4095ULL;
    paging_init(vbase, abase);
    gdt_init();
    idt_init();
    kprintf("cpu: long mode, own page tables (NX, SMEP, WP), GDT+TSS, IDT ready\n");

    /* SYSCALL: kernel CS 0x10 / SS 0x18, SYSRET base 0x18 (user SS 0x23, CS 0x2b) */
    wrmsr(0xC0000081, ((u64)0x18 << 48) | ((u64)KCODE << 32));
    wrmsr(0xC0000082, (u64)syscall_entry);
    wrmsr(0xC0000084, 0x47700);                 /* clear IF TF DF AC NT on entry */

    /* an MSR the VMM may refuse (its policy): handled with an exception fixup */
    if (wrmsr_safe(0xC0000103, 0x1234))
        kprintf("msr: wrmsr 0xc0000103 refused with #GP, continuing\n");
    else
        kprintf("msr: wrmsr 0xc0000103 ok, reads back 0x%lx\n", rdmsr(0xC0000103));

    apic_init();
    ioapic_route(4, VEC_UART);
    outb(COM1 + 1, 0x01);                       /* UART receive interrupts */

    if (vbase && virtio_init(vbase, virq) == 0) disk_test();
    if (abase && accel_init(abase, airq) == 0) accel_test();

    int bench = find_arg("bench") != NULL;
    if (bench) {
        /* phases are marked on port 0x80 (the VMM timestamps them in host time) */
        post(2);
        spawn("ping", PROG_PING, 0);
        spawn("pong", PROG_PING, 0);
        u64 t0 = rdtsc();
        u64 s0 = n_switch;
        schedule();
        u64 t1 = rdtsc();
        post(3);
        kprintf("bench: %lu context switches in %lu cycles: %lu cycles per switch\n",
                n_switch - s0, t1 - t0, (t1 - t0) / (n_switch - s0));
        post(4);
        spawn("intbench", PROG_INTBENCH, 0);
        schedule();
        post(5);
        spawn("sysbench", PROG_SYSBENCH, 0);
        schedule();
        post(6);
        u64 tk0 = ticks, c0 = rdtsc();
        while (ticks < tk0 + 20) __asm__ volatile("sti; hlt; cli" ::: "memory");
        u64 c1 = rdtsc();
        post(7);
        kprintf("bench: 20 timer ticks in %lu cycles\n", c1 - c0);
    } else {
        struct proc *a = spawn("A", PROG_A, 0);
        spawn("B", PROG_B, 0);
        spawn("C", PROG_C, 0);
        static const char *tnames[N_TESTS] = {
            "t-rdkern", "t-wrkern", "t-wrro", "t-nx", "t-hlt", "t-cli", "t-in", "t-out", "t-wrmsr",
            "t-cr3", "t-lgdt", "t-invlpg", "t-other", "t-unmapped", "t-badptr" };
        for (int t = 0; t < N_TESTS; t++) spawn(tnames[t], PROG_TEST + t, a->data_phys);
        kprintf("sched: %d processes, entering ring 3\n", 3 + N_TESTS);
        schedule();
    }
    kprintf("all processes finished: %d exited, %d killed; %lu ticks, %lu switches, %lu preemptions\n",
            n_exited, n_killed, ticks, n_switch, n_preempt);
    kprintf("kernel: halting\n");
    post(0xFF);
    halt_forever();
}
