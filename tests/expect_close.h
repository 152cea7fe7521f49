/* expect_close.h — how the kernel tests compare a result with its CPU
 * reference (cmocka; include after cmocka.h). Relative error in the 2-norm
 * within `tol`, and every element finite and within 8 x tol of the
 * reference's scale, so one wild element cannot hide in the norm. Outputs
 * start as NaN in these tests, so an unwritten element fails too.
 */
#ifndef SAGERUN_EXPECT_CLOSE_H
#define SAGERUN_EXPECT_CLOSE_H

#include <math.h>
#include <stddef.h>

static void expect_close_to(const char *what, const float *got, const float *want, size_t n, double tol)
{
    double diff = 0.0, norm = 0.0, worst = 0.0;
    for (size_t i = 0; i < n; i++)
        norm += (double)want[i] * want[i];
    double rms = sqrt(norm / (double)n);
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(got[i]))
            fail_msg("%s[%zu] = %f (want %f): not finite (unwritten or overflowed)", what, i, got[i], want[i]);
        double d = fabs((double)got[i] - want[i]);
        diff += d * d;
        worst = fmax(worst, d / (fabs(want[i]) + rms + 1e-30));
    }
    double rel = sqrt(diff) / (sqrt(norm) + 1e-30);
    print_message("  %-26s relative error %.2e (bound %.0e), worst element %.2e\n", what, rel, tol, worst);
    if (rel > tol || worst > 8 * tol)
        fail_msg("%s: relative error %.3e, worst element %.3e, bound %.1e", what, rel, worst, tol);
}

#endif
