/* printf of floats, double/float/long double arithmetic and libm. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

int main(void)
{
    double d = 0.1, acc = 0;
    float f = 1.0f / 3.0f;
    long double ld = 1.0L / 3.0L;
    for (int i = 0; i < 1000; i++)
        acc += d * i;
    printf("%.17g %.9g %.21Lg\n", acc, f, ld);
    printf("%e %g %a %f\n", 6.02214076e23, 1e-300 * 1e-10, 1.5, -0.0);
    printf("sqrt %.15g sin %.15g exp %.15g log %.15g pow %.15g\n", sqrt(2.0), sin(1.0), exp(1.0), log(10.0), pow(2.5, 3.7));
    printf("atan2 %.15g floor %g ceil %g fmod %g\n", atan2(1.0, -1.0), floor(-2.5), ceil(-2.5), fmod(10.5, 3.0));
    printf("inf %f nan %f huge %g tiny %g\n", 1.0 / 0.0, 0.0 / 0.0 * 0, 1.7976931348623157e308, 4.9e-324);
    printf("strtod %.17g atof %.17g\n", strtod("3.14159265358979323846", NULL), atof("-1e-5"));
    long double x = 2.0L;
    printf("long double sqrt %.20Lg\n", sqrtl(x));
    printf("conversions %d %ld %u %.3f\n", (int)-3.99, (long)1e18, (unsigned)3.5e9, (double)(1LL << 62));
    return 0;
}
