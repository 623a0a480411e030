/*
 * assert.c: internal assertions, the debug tier of checks (internal.h's
 * hostmem__assert; on with the HOSTMEM_ASSERT build option, which the dev and
 * asan presets set).  A failed one names the condition, file and line on
 * stderr and aborts: an invariant of the books no longer holds, and going on
 * would hand the host a wrong answer later, far from the cause.
 */
#include <string.h>

#include "internal.h"

bool hostmem__in_fork_child;

void hostmem__assert_fail(const char *what, const char *file, int line)
{
    /* No stdio: this may run in a signal handler (guard.c) or with a lock of
     * the process heap held (a host whose malloc sits on the manager). */
    char buf[512];
    size_t n = 0;
    const char *parts[] = {"hostmem: internal assertion failed: ", what, " (", file, ":"};
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
        for (const char *s = parts[i]; *s && n < sizeof buf - 16; s++)
            buf[n++] = *s;
    char digits[12];
    size_t d = 0;
    unsigned v = line > 0 ? (unsigned)line : 0;
    do
        digits[d++] = (char)('0' + v % 10);
    while ((v /= 10) && d < sizeof digits);
    while (d)
        buf[n++] = digits[--d];
    buf[n++] = ')';
    buf[n++] = '\n';
    hostmem__os_abort(buf, n);
}

/* glibc records the owner's thread id in every mutex of the default type
 * when it is locked (__data.__owner, cleared on unlock), timed and
 * condition-variable relocks included.  A child made by fork() runs its
 * handlers with the parent's locks, recorded under the parent's ids. */
bool hostmem__lock_held(pthread_mutex_t *mu)
{
    if (hostmem__in_fork_child)
        return true;
    return mu->__data.__owner == hostmem__os_thread_id();
}
