/* A user of the installed library: only the public header. */
#include <hostmem/hostmem.h>
#include <stdio.h>
#include <string.h>

int main(void)
{
    hostmem_manager *m;
    void *p;
    if (FAILED(hostmem_create(NULL, &m)) ||
        FAILED(hostmem_virtual_alloc(m, NULL, 1 << 20, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE, eTaskCritical, &p)))
        return 1;
    memset(p, 1, 1 << 20);
    int ok = SUCCEEDED(hostmem_virtual_free(m, p, 0, MEM_RELEASE)) &&
             strcmp(hostmem_hresult_name(HOSTMEM_E_INVALID_ADDRESS), "HOSTMEM_E_INVALID_ADDRESS") == 0;
    hostmem_destroy(m);
    puts(ok ? "consumer: ok" : "consumer: FAILED");
    return ok ? 0 : 1;
}
