/* check_main.h - shared by the test files: each tests/test_*.c is its own
 * Check program and ends with TEST_MAIN(its_suite). */
#ifndef TAPEGRAD_CHECK_MAIN_H
#define TAPEGRAD_CHECK_MAIN_H

#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../include/tapegrad.h"

/* |a - b| <= tol, with both values in the failure message. */
#define ck_assert_close(a, b, tol)                                                   \
    do {                                                                             \
        double _a = (a), _b = (b);                                                   \
        ck_assert_msg(fabs(_a - _b) <= (tol), "%s = %.10g, expected %.10g (tol %g)", \
                      #a, _a, _b, (double)(tol));                                    \
    } while (0)

/* Every element of t equals expected[] within tol. */
#define ck_assert_tensor(t, expected, tol)                                          \
    do {                                                                            \
        const tensor *_t = (t);                                                     \
        ck_assert_ptr_nonnull(_t);                                                  \
        for (int64_t _i = 0; _i < _t->size; _i++)                                   \
            ck_assert_msg(fabs(tensor_get(_t, _i) - (expected)[_i]) <= (tol),       \
                          "%s[%lld] = %.10g, expected %.10g", #t, (long long)_i,    \
                          tensor_get(_t, _i), (double)(expected)[_i]);              \
    } while (0)

/* The pending error is exactly msg; clears it. */
#define ck_assert_error_is(msg)                                                      \
    do {                                                                             \
        ck_assert_ptr_nonnull(tapegrad_error());                                     \
        ck_assert_str_eq(tapegrad_error(), (msg));                                   \
        tapegrad_error_clear();                                                      \
    } while (0)

/* expr returns NULL and leaves exactly the error msg (an error pending before
 * expr would show, since the first message is kept); clears it. */
#define ck_assert_fails_with(expr, msg)                                              \
    do {                                                                             \
        ck_assert_ptr_null(expr);                                                    \
        ck_assert_error_is(msg);                                                     \
    } while (0)

/* From a clear error state, expr returns NULL and the error contains part;
 * clears it. */
#define ck_assert_fails(expr, part)                                                  \
    do {                                                                             \
        tapegrad_error_clear();                                                      \
        ck_assert_ptr_null(expr);                                                    \
        ck_assert_ptr_nonnull(tapegrad_error());                                     \
        ck_assert_msg(strstr(tapegrad_error(), (part)), "error \"%s\" lacks \"%s\"",   \
                      tapegrad_error(), (part));                                     \
        tapegrad_error_clear();                                                      \
    } while (0)

/* Internal (autograd/memory.c): fresh arena memory filled with NaN, so a
 * kernel that reads what it never wrote fails every test that runs it. */
void tg_arena_set_poison(bool on);

#define TEST_MAIN(suite_fn)                                    \
    int main(void) {                                           \
        tg_arena_set_poison(true);                                \
        SRunner *sr = srunner_create(suite_fn());              \
        srunner_run_all(sr, CK_NORMAL);                        \
        int failed = srunner_ntests_failed(sr);                \
        srunner_free(sr);                                      \
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;           \
    }

#endif
