/* CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320) in software: a table
 * built bit by bit, then the table-driven byte loop over a pseudo-random
 * buffer fed REPS times (the CRC of the buffer repeated REPS times). A
 * bitwise pass over the first BITWISE bytes cross-checks the table. */
#include "../include/rt.h"

#ifndef SIZE
#define SIZE (1 << 20)
#endif
#ifndef REPS
#define REPS 24
#endif
#ifndef BITWISE
#define BITWISE 65536
#endif

static u8 buf[SIZE];
static u32 table[256];

static u32 crc_bitwise(u32 crc, const u8 *p, u64 n)
{
    crc = ~crc;
    while (n--) {
        crc ^= *p++;
        for (int k = 0; k < 8; k++)
            crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1)));
    }
    return ~crc;
}

static u32 crc_table(u32 crc, const u8 *p, u64 n)
{
    crc = ~crc;
    while (n--)
        crc = table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return ~crc;
}

int main(void)
{
    for (u32 i = 0; i < 256; i++) {
        u32 c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? (c >> 1) ^ 0xEDB88320u : c >> 1;
        table[i] = c;
    }
    rng_seed(0x1234567);
    for (u64 i = 0; i < SIZE; i += 8) {
        u64 v = rng_next();
        for (int k = 0; k < 8; k++)
            buf[i + k] = (u8)(v >> (8 * k));
    }
    u32 crc = 0;
    for (int rep = 0; rep < REPS; rep++)
        crc = crc_table(crc, buf, SIZE);
    u32 bit = crc_bitwise(0, buf, BITWISE);
    u32 tab = crc_table(0, buf, BITWISE);
    out_str("crc32 size=");
    out_dec(SIZE);
    out_str(" reps=");
    out_dec(REPS);
    out_str(" crc=");
    out_hex(crc, 8);
    out_str(" head=");
    out_hex(bit, 8);
    out_str(bit == tab ? " ok\n" : " MISMATCH\n");
    out_flush();
    return bit == tab ? 0 : 1;
}
