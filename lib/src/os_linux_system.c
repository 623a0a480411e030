/*
 * os_linux_system.c: the system around the mappings, over Linux: the memory
 * load (/proc/meminfo), the process-wide SIGSEGV hook, and what a failed
 * internal assertion needs (the thread id, abort).  Every function
 * returns 0 or an errno value and leaves errno as it found it.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

int hostmem__os_meminfo(uint64_t *total, uint64_t *available)
{
    char buf[4096];
    int fd = open("/proc/meminfo", O_RDONLY | O_CLOEXEC), saved = errno;
    if (fd < 0)
        return errno;
    ssize_t n;
    do
        n = read(fd, buf, sizeof buf - 1);
    while (n < 0 && errno == EINTR);
    int err = n < 0 ? errno : n == 0 ? EIO : 0; /* the read's own errno (EAGAIN, ENOMEM...) */
    close(fd);
    errno = saved;
    if (err)
        return err;
    buf[n] = 0;
    const char *t = strstr(buf, "MemTotal:"), *a = strstr(buf, "MemAvailable:");
    if (!t || !a)
        return EIO;
    *total = strtoull(t + 9, NULL, 10) * 1024;
    *available = strtoull(a + 13, NULL, 10) * 1024;
    return 0;
}

/* ---- the SIGSEGV handler of config.guard_handler (W2) ------------------------ */

static pthread_mutex_t fault_hook_lock = PTHREAD_MUTEX_INITIALIZER;
static bool (*_Atomic fault_hook)(const siginfo_t *);
static struct sigaction fault_previous;

static void fault_chain(int sig, siginfo_t *info, void *context)
{
    if (fault_previous.sa_flags & SA_SIGINFO) {
        if (fault_previous.sa_sigaction) {
            fault_previous.sa_sigaction(sig, info, context);
            return;
        }
    } else if (fault_previous.sa_handler != SIG_DFL && fault_previous.sa_handler != SIG_IGN) {
        fault_previous.sa_handler(sig);
        return;
    }
    /* The default action (a fault cannot be ignored): the access faults again
     * on return and the process ends with SIGSEGV, as it would have. */
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    sigaction(sig, &dfl, NULL);
}

static void fault_on_signal(int sig, siginfo_t *info, void *context)
{
    int saved = errno;
    bool (*hook)(const siginfo_t *) = atomic_load(&fault_hook);
    if (hook && hook(info)) {
        errno = saved;
        return;
    }
    errno = saved;
    fault_chain(sig, info, context);
}

int hostmem__os_fault_hook(bool (*on_fault)(const siginfo_t *info))
{
    int err = 0, saved = errno;
    pthread_mutex_lock(&fault_hook_lock);
    if (!atomic_load(&fault_hook)) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_sigaction = fault_on_signal;
        sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
        sigemptyset(&sa.sa_mask);
        atomic_store(&fault_hook, on_fault);
        if (sigaction(SIGSEGV, &sa, &fault_previous)) {
            err = errno;
            atomic_store(&fault_hook, NULL);
        }
    }
    pthread_mutex_unlock(&fault_hook_lock);
    errno = saved;
    return err;
}

int hostmem__os_thread_id(void) { return (int)gettid(); }

void hostmem__os_abort(const char *msg, size_t len)
{
    while (len) {
        ssize_t n = write(STDERR_FILENO, msg, len);
        if (n <= 0)
            break;
        msg += n;
        len -= (size_t)n;
    }
    abort();
}
