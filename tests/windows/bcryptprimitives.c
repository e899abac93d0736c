/* A stand-in bcryptprimitives.dll for Wine 8, which does not ship one: Rust's std (1.78 and later)
 * imports ProcessPrng from it, so without it every Rust .exe fails to load (status c0000135). Built
 * and installed into the test prefix by shell/test-windows.sh; never shipped. ProcessPrng is
 * documented to always succeed and return TRUE; RtlGenRandom (advapi32's SystemFunction036) fills
 * at most ULONG bytes per call. */
#include <windows.h>
#include <ntsecapi.h>

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    while (len > 0) {
        ULONG chunk = len > 0x10000000 ? 0x10000000 : (ULONG)len;
        if (!RtlGenRandom(data, chunk))
            return FALSE;
        data += chunk;
        len -= chunk;
    }
    return TRUE;
}
