/* Which implementation glibc's ifunc resolver chose for strlen, memchr,
   memcpy and strchr under the CPU the program sees (AVX2, EVEX or SSE2
   variants): the resolved address as (library, offset). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

/* the implementations are local symbols of a stripped libc: print where
   the resolved one lives (file and offset); the test decodes its code */
static void show(const char *name, void *p) {
    Dl_info di;
    if (dladdr(p, &di))
        printf("%s %s %#lx\n", name, di.dli_fname, (unsigned long)((char *)p - (char *)di.dli_fbase));
    else
        printf("%s ? 0\n", name);
}

int main(void) {
    /* through volatile pointers so the compiler keeps the PLT/IRELATIVE targets */
    void *volatile a = (void *)strlen, *volatile b = (void *)memchr, *volatile c = (void *)memcpy,
                   *volatile d = (void *)strchr;
    show("strlen", a);
    show("memchr", b);
    show("memcpy", c);
    show("strchr", d);
    return 0;
}
