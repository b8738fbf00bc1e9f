/* check.h: the failure-counting macros shared by the C tests. CHECK and EXPECT count a
 * failure and go on; OK stops the test. Each test ends with `return failures ? 1 : 0`. */
#ifndef EQFLOW_TEST_CHECK_H
#define EQFLOW_TEST_CHECK_H

#include "eqflow.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures = 0;

#define CHECK(cond)                                                                            \
    do {                                                                                       \
        if (!(cond)) {                                                                         \
            fprintf(stderr, "FAIL %s:%d: %s (last error: %s)\n", __FILE__, __LINE__, #cond,    \
                    eqflow_last_error_message());                                              \
            failures++;                                                                        \
        }                                                                                      \
    } while (0)

/* the status is `want` and the message names the function and the argument */
#define EXPECT(call, want, fn, arg)                                                            \
    do {                                                                                       \
        eqflow_status s_ = (call);                                                             \
        const char *m_ = eqflow_last_error_message();                                          \
        if (s_ != (want) || !strstr(m_, fn) || !strstr(m_, arg)) {                             \
            fprintf(stderr, "FAIL %s:%d: %s -> %d (%s) '%s', want %d naming %s and %s\n",      \
                    __FILE__, __LINE__, #call, (int)s_, eqflow_status_name(s_), m_, (int)(want), \
                    fn, arg);                                                                  \
            failures++;                                                                        \
        }                                                                                      \
    } while (0)

#define OK(call)                                                                               \
    do {                                                                                       \
        eqflow_status s_ = (call);                                                             \
        if (s_ != EQFLOW_STATUS_OK) {                                                          \
            fprintf(stderr, "FAIL %s:%d: %s -> %s: %s\n", __FILE__, __LINE__, #call,            \
                    eqflow_status_name(s_), eqflow_last_error_message());                      \
            exit(1);                                                                           \
        }                                                                                      \
    } while (0)

#endif
